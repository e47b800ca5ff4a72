package urls

import (
	"strings"
	"testing"
	"testing/iotest"
)

var calendarCases = []struct {
	name string
	in   string
	want []string
}{
	{"URI properties", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nURL:http://event.example/e\r\n" +
		"ATTACH;FMTTYPE=application/pdf:https://files.example/agenda.pdf\r\n" +
		"CONFERENCE;VALUE=URI;FEATURE=VIDEO:https://meet.example/abc\r\n" +
		"ORGANIZER;CN=\"Boss: the one\":mailto:boss@corp.example\r\n" +
		"ATTENDEE;RSVP=TRUE:MAILTO:you@corp.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
		[]string{"http://event.example/e", "https://files.example/agenda.pdf", "https://meet.example/abc",
			"mailto:boss@corp.example", "mailto:you@corp.example"}},
	// Inline data is no link, whatever its bytes spell once decoded or not.
	{"ATTACH VALUE=BINARY", "ATTACH;FMTTYPE=text/plain;ENCODING=BASE64;VALUE=BINARY:aHR0cDovL2JhZC5leGFtcGxlLw==\r\n" +
		"ATTACH;VALUE=BINARY:http://not.example/\r\nATTACH;ENCODING=BASE64:http://nor.example/\r\n", nil},
	{"folded URI", "URL:http://fold.exa\r\n mple/long/pa\r\n\tth\r\n", []string{"http://fold.example/long/path"}},
	{"folded and escaped text", "DESCRIPTION:Join at https://join.exa\r\n mple/x\\,y then\\nwww.second.example/p\\;q\r\n" +
		"LOCATION:Room 1\\, see http://map.example/r1\r\n",
		[]string{"https://join.example/x,y", "http://www.second.example/p;q", "http://map.example/r1"}},
	// An escaped newline ends the link as the real one would.
	{"escaped newline ends a link", `DESCRIPTION:http://a.example/x\nmore text` + "\n", []string{"http://a.example/x"}},
	{"LF line ends", "BEGIN:VEVENT\nURL:http://lf.example/\n fold\nEND:VEVENT\n", []string{"http://lf.example/fold"}},
	{"X-ALT-DESC as HTML", "X-ALT-DESC;FMTTYPE=text/html:<a href=\"http://alt.example/a\">join</a><img src=\"//img.exa\r\n mple/i.png\">\r\n",
		[]string{"http://alt.example/a", "https://img.example/i.png"}},
	{"X-ALT-DESC as text", "X-ALT-DESC:see http://plain.example/\r\n", []string{"http://plain.example/"}},
	{"ALTREP", "DESCRIPTION;ALTREP=\"http://altrep.example/d;x\":text\r\n", []string{"http://altrep.example/d;x"}},
	{"other properties are not read", "UID:http://uid.example/\r\nX-WR-CALNAME:http://x.example/\r\nDTSTART:20260101T000000Z\r\n", nil},
	{"no value, no colon, empty lines", "BEGIN\r\n\r\n;;;\r\nURL\r\nURL:http://after.example/\r\n", []string{"http://after.example/"}},
	{"no final line end", "URL:http://last.example/", []string{"http://last.example/"}},
}

func TestScanCalendar(t *testing.T) {
	for _, tc := range calendarCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, one := range []bool{false, true} {
				c := NewCollector(Options{})
				var r = strings.NewReader(tc.in)
				err := error(nil)
				if one {
					c.chunk = 3
					err = c.ScanCalendar(iotest.OneByteReader(r), "calendar")
				} else {
					err = c.ScanCalendar(r, "calendar")
				}
				if err != nil {
					t.Fatal(err)
				}
				sameList(t, "urls", urlList(c.URLs()), orEmpty(tc.want))
				for _, u := range c.URLs() {
					if len(u.Sources) != 1 || u.Sources[0] != "calendar" {
						t.Errorf("%s: sources %q", u.URL, u.Sources)
					}
				}
			}
		})
	}
}

// TestScanCalendarBounded: a huge folded line, in the head or in a URI value, is passed over
// without being held, and the lines after it are still read.
func TestScanCalendarBounded(t *testing.T) {
	long := strings.Repeat("a\r\n ", 200000)
	in := "X-" + long + ":x\r\nURL:http://u.example/" + long + "\r\nURL:http://next.example/\r\n"
	c := NewCollector(Options{MaxURLLength: 100})
	if err := c.ScanCalendar(strings.NewReader(in), "calendar"); err != nil {
		t.Fatal(err)
	}
	got := urlList(c.URLs())
	if len(got) != 2 || got[1] != "http://next.example/" || !strings.HasPrefix(got[0], "http://u.example/aaa") {
		t.Errorf("urls %q", got)
	}
	if l := c.LimitsHit(); len(l) != 1 || l[0] != LimitURLLength {
		t.Errorf("limits %q", l)
	}
}

func TestScanCalendarReadError(t *testing.T) {
	c := NewCollector(Options{})
	err := c.ScanCalendar(iotest.TimeoutReader(strings.NewReader("URL:http://a.example/\r\n")), "calendar")
	if err == nil {
		t.Fatal("read error lost")
	}
	err = c.ScanCalendar(iotest.DataErrReader(iotest.ErrReader(iotest.ErrTimeout)), "calendar")
	if err == nil {
		t.Fatal("read error lost")
	}
}
