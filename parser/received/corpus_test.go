package received

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

// receivedFields returns the unfolded values of every line-initial "Received:" field in a
// message, nested messages included. Good enough for counting; the parser proper reads
// headers with the walker.
func receivedFields(msg []byte) []string {
	lines := bytes.Split(msg, []byte("\n"))
	var out []string
	for i := 0; i < len(lines); i++ {
		l := bytes.TrimRight(lines[i], "\r")
		if len(l) < 9 || !bytes.EqualFold(l[:9], []byte("received:")) {
			continue
		}
		v := append([]byte(nil), l[9:]...)
		for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
			v = append(v, ' ')
			v = append(v, bytes.TrimSpace(lines[i])...)
		}
		out = append(out, string(bytes.TrimSpace(v)))
	}
	return out
}

// TestCorpus parses every Received field of the corpus, checks the invariants, and reports
// how many yield each part. The floors are a little under what was measured when the parser
// was written, to catch regressions; the misses are listed with -v.
func TestCorpus(t *testing.T) {
	dir := testkit.CorpusDir(t)
	var n, from, by, with, ip, date int
	var fromFields, fromFound int // fields that start with a from clause
	for _, path := range testkit.CorpusMessages(t, dir) {
		msg, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range receivedFields(msg) {
			r := Parse(v)
			checkInvariants(t, v, r)
			n++
			count := func(s string, c *int) {
				if s != "" {
					*c++
				}
			}
			count(r.From, &from)
			count(r.By, &by)
			count(r.With, &with)
			count(r.IP, &ip)
			count(r.Date, &date)
			if len(v) > 5 && strings.EqualFold(v[:5], "from ") {
				fromFields++
				count(r.From, &fromFound)
			}
			if r.Date == "" || r.By == "" {
				t.Logf("partial: %+v from %.160q", r, v)
			}
		}
	}
	if n == 0 {
		t.Fatal("no Received fields found")
	}
	pct := func(c int) float64 { return 100 * float64(c) / float64(n) }
	fromPct := 100 * float64(fromFound) / float64(max(fromFields, 1))
	t.Logf("%d Received fields: from %.1f%% (%.1f%% of the %d starting with \"from\"), by %.1f%%, with %.1f%%, ip %.1f%%, date %.1f%%",
		n, pct(from), fromPct, fromFields, pct(by), pct(with), pct(ip), pct(date))
	for _, f := range []struct {
		name      string
		got, want float64
	}{{"from", fromPct, 97}, {"by", pct(by), 88}, {"date", pct(date), 92}} {
		if f.got < f.want {
			t.Errorf("%s found in %.1f%% of fields, want at least %.0f%%", f.name, f.got, f.want)
		}
	}
}

func checkInvariants(t testing.TB, in string, r api.Received) {
	t.Helper()
	for _, f := range []string{r.From, r.By, r.With} {
		if len(f) > maxField || !utf8.ValidString(f) {
			t.Fatalf("Parse(%.100q): field of %d bytes", in, len(f))
		}
	}
	if r.IP != "" {
		a, err := netip.ParseAddr(r.IP)
		if err != nil || a.String() != r.IP || a.Zone() != "" {
			t.Fatalf("Parse(%.100q): IP %q is not canonical", in, r.IP)
		}
	}
	if r.Date != "" {
		d, err := time.Parse(time.RFC3339, r.Date)
		if err != nil || d.Location() != time.UTC {
			t.Fatalf("Parse(%.100q): date %q is not RFC 3339 UTC", in, r.Date)
		}
	}
}
