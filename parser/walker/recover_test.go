package walker

import (
	"strings"
	"testing"
	"testing/iotest"
)

const mismatched = `From: a@example.com
Content-Type: multipart/mixed; boundary="declared"

--real_0001
Content-Type: text/plain

see https://example.com/a
--real_0001
Content-Type: application/pdf
Content-Transfer-Encoding: base64

JVBERi0=
--real_0001--
`

func TestDeclaredBoundaryMissingUsesTheOneInUse(t *testing.T) {
	var details []string
	opts := Options{}
	for _, r := range []struct {
		name string
		msg  string
	}{{"crlf", crlf(mismatched)}, {"lf", mismatched}} {
		res := walk(t, strings.NewReader(r.msg), opts)
		checkParts(t, res.parts,
			`top multipart multipart/mixed ""`,
			`1 leaf text/plain "see https://example.com/a"`,
			`2 leaf application/pdf "JVBERi0="`,
		)
		if got := strings.Join(res.anomalies, ","); got != "boundary_recovered@" {
			t.Errorf("%s: anomalies %s", r.name, got)
		}
		if len(res.limits) != 0 {
			t.Errorf("%s: limits %v", r.name, res.limits)
		}
	}
	opts.Report = func(a Anomaly) { details = append(details, a.Detail) }
	w := New(strings.NewReader(mismatched), opts)
	for {
		if _, err := w.Next(); err != nil {
			break
		}
	}
	if len(details) != 1 || details[0] != `declared "declared", used "real_0001"` {
		t.Errorf("details %q", details)
	}
	// Byte at a time, the look ahead sees the same prefix.
	res := walk(t, iotest.OneByteReader(strings.NewReader(crlf(mismatched))), Options{})
	if len(res.parts) != 3 {
		t.Errorf("one-byte reads: %v", res.parts)
	}
}

func TestRecoveryInNestedMultipart(t *testing.T) {
	msg := crlf(`Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=wrong

--alt1
Content-Type: text/plain

p
--alt1
Content-Type: text/html

h
--alt1--
--outer
Content-Type: text/plain

after
--outer--
`)
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts,
		`top multipart multipart/mixed ""`,
		`1 multipart multipart/alternative ""`,
		`1.1 leaf text/plain "p"`,
		`1.2 leaf text/html "h"`,
		`2 leaf text/plain "after"`,
	)
	if got := strings.Join(res.anomalies, ","); got != "boundary_recovered@1" {
		t.Errorf("anomalies %s", got)
	}
}

func TestNoCandidateKeepsTodaysBehaviour(t *testing.T) {
	for name, body := range map[string]string{
		// One delimiter-like line with no repeat and no closing line proves nothing.
		"once":   "--cand\nContent-Type: text/plain\n\nx\n",
		"none":   "just text\n",
		"dashes": "----------\ntext\n----------\n----------\n",
		// A candidate past the enclosing multipart's end is not this multipart's.
		"outside": "",
	} {
		msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n" + body)
		want := "boundary_not_found@"
		if name == "outside" {
			msg = crlf("Content-Type: multipart/mixed; boundary=O\n\n--O\nContent-Type: multipart/mixed; boundary=A\n\nx\n--O\n\n--c1\n--c1\n--O--\n")
			want = "unclosed_multipart@1"
		}
		res := walk(t, strings.NewReader(msg), Options{})
		if got := strings.Join(res.anomalies, ","); got != want {
			t.Errorf("%s: anomalies %s, want %s", name, got, want)
		}
		if len(res.limits) != 0 {
			t.Errorf("%s: limits %v", name, res.limits)
		}
	}
}

func TestDeclaredBoundaryInPrefixWinsOverCandidate(t *testing.T) {
	msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--x1\n--x1\n--A\nContent-Type: text/plain\n\nbody\n--A--\n")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf text/plain "body"`)
	if len(res.anomalies) != 0 {
		t.Errorf("anomalies %v", res.anomalies)
	}
}

func TestDuplicateContentTypePrefersTheOneWhoseBoundaryOccurs(t *testing.T) {
	msg := crlf(`Content-Type: text/plain
Content-Type: multipart/mixed; boundary=second

--second
Content-Type: text/html

<a href="https://example.com/">x</a>
--second--
`)
	var details []string
	opts := Options{Report: func(a Anomaly) { details = append(details, a.Code+": "+a.Detail) }}
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf text/html "<a href=\"https://example.com/\">x</a>"`)
	if got := strings.Join(res.anomalies, ","); got != "duplicate_content_type@" {
		t.Errorf("anomalies %s", got)
	}
	w := New(strings.NewReader(msg), opts)
	_, _ = w.Next()
	if len(details) != 1 || !strings.Contains(details[0], "Content-Type 2 of 2 (multipart/mixed)") {
		t.Errorf("details %q", details)
	}

	// Both multipart: the first one's boundary occurs, so it is used without a word.
	msg = crlf("Content-Type: multipart/mixed; boundary=one\nContent-Type: multipart/mixed; boundary=two\n\n--one\n\nx\n--one--\n")
	res = walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf text/plain "x"`)
	if len(res.anomalies) != 0 {
		t.Errorf("anomalies %v", res.anomalies)
	}
}

func TestPrefixWithoutDecisionIsALimit(t *testing.T) {
	// 64 KiB of preamble with no delimiter at all: walked as declared, and the record says
	// the look was cut short.
	msg := "Content-Type: multipart/mixed; boundary=A\r\n\r\n" + strings.Repeat("filler line\r\n", 6000) +
		"--A\r\nContent-Type: text/plain\r\n\r\nlate\r\n--A--\r\n"
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf text/plain "late"`)
	if got := strings.Join(res.limits, ","); got != "boundary_prefix" {
		t.Errorf("limits %s", got)
	}
	if len(res.anomalies) != 0 {
		t.Errorf("anomalies %v", res.anomalies)
	}
}

func TestMissedLookAheadsHaveABudget(t *testing.T) {
	// Once the message's budget for look-aheads that missed is spent (nested multiparts
	// that each miss look over the same bytes again), the walker stops looking and says so.
	var limits, anomalies []string
	w := New(strings.NewReader(crlf(mismatched)), Options{
		Limit:  func(n string) { limits = append(limits, n) },
		Report: func(a Anomaly) { anomalies = append(anomalies, a.Code) },
	})
	w.missedLook = maxMissedLook
	for {
		if _, err := w.Next(); err != nil {
			break
		}
	}
	if strings.Join(limits, ",") != "boundary_prefix" || strings.Join(anomalies, ",") != "boundary_not_found" {
		t.Errorf("limits %v, anomalies %v", limits, anomalies)
	}
}

func TestBoundaryOpenedWithOneTokenAndClosedWithAnother(t *testing.T) {
	// The shape of a spam run's mailer: a boundary declared, another opening the one part
	// and a third closing it.
	msg := crlf(`Content-Type: multipart/alternative; boundary="--=_declared"

----=_opener
Content-Type: text/html

<a href="https://example.com/">x</a>
----=_closer--
epilogue
`)
	var details []string
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/alternative ""`, `1 leaf text/html "<a href=\"https://example.com/\">x</a>"`)
	if got := strings.Join(res.anomalies, ","); got != "boundary_recovered@" {
		t.Errorf("anomalies %s", got)
	}
	w := New(strings.NewReader(msg), Options{Report: func(a Anomaly) { details = append(details, a.Detail) }})
	for {
		if _, err := w.Next(); err != nil {
			break
		}
	}
	if want := `declared "--=_declared", used "--=_opener", closed by "--=_closer"`; len(details) != 1 || details[0] != want {
		t.Errorf("details %q, want %q", details, want)
	}
}

func TestOpenedAndClosedApartNeedsTheOnlyReading(t *testing.T) {
	head := "Content-Type: multipart/mixed; boundary=declared\n\n"
	for name, body := range map[string]string{
		"no header after the opener": "--opener\nsome text\n--closer--\n",
		"closer before the opener":   "--closer--\n--opener\nContent-Type: text/plain\n\nx\n",
		"two openers":                "--one\nContent-Type: text/plain\n\nx\n--two\nContent-Type: text/plain\n\ny\n--closer--\n",
		"two closers":                "--opener\nContent-Type: text/plain\n\nx\n--c1--\n--c2--\n",
		"PGP armour":                 "-----BEGIN PGP MESSAGE-----\nVersion: 1\n\nhQEMA\n-----END PGP MESSAGE-----\n",
		"armour closing an opener":   "--opener\nContent-Type: text/plain\n\nx\n-----END PGP SIGNATURE-----\n",
		"a forwarding rule":          "--opener\nContent-Type: text/plain\n\n---------- Forwarded message --\n",
		"rows of dashes":             "--------\nContent-Type: text/plain\n\nx\n----------\n",
		"a signature separator":      "-- \nContent-Type: x\n\n--sig--\n",
	} {
		res := walk(t, strings.NewReader(crlf(head+body)), Options{})
		if got := strings.Join(res.anomalies, ","); got != "boundary_not_found@" {
			t.Errorf("%s: anomalies %s, want boundary_not_found@", name, got)
		}
	}
	// The rest of the multipart was not in view: the declared boundary may still come.
	msg := "Content-Type: multipart/mixed; boundary=A\r\n\r\n--opener\r\nContent-Type: text/plain\r\n\r\nx\r\n--closer--\r\n" +
		strings.Repeat("filler line\r\n", 6000) + "--A\r\nContent-Type: text/plain\r\n\r\nlate\r\n--A--\r\n"
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf text/plain "late"`)
	if len(res.anomalies) != 0 || strings.Join(res.limits, ",") != "boundary_prefix" {
		t.Errorf("cut short: anomalies %v, limits %v", res.anomalies, res.limits)
	}
}
