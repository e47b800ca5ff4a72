package sensor

import (
	"math"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		line, verb, arg string
		ok              bool
	}{
		{"EHLO client.test", "EHLO", "client.test", true},
		{"ehlo client.test", "EHLO", "client.test", true},
		{"MAIL FROM:<a@b> SIZE=10", "MAIL", "FROM:<a@b> SIZE=10", true},
		{"DATA", "DATA", "", true},
		{"RSET  ", "RSET", "", true},
		{"QUIT", "QUIT", "", true},
		{"", "", "", false},
		{" MAIL FROM:<a@b>", "", "", false},
		{"MA1L FROM:<a@b>", "", "", false},
		{"\x00DATA", "", "", false},
		{"VERYLONGVERB x", "", "", false},
	} {
		c, ok := parseCommand(tc.line)
		if ok != tc.ok || c.verb != tc.verb || c.arg != tc.arg {
			t.Errorf("parseCommand(%q) = %+v, %v; want %q %q %v", tc.line, c, ok, tc.verb, tc.arg, tc.ok)
		}
	}
}

func TestParseMail(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want mailArgs
		err  error
	}{
		{"FROM:<a@example.org>", mailArgs{from: "a@example.org"}, nil},
		{"from:<a@example.org>", mailArgs{from: "a@example.org"}, nil},
		{"FROM: <a@example.org>", mailArgs{from: "a@example.org"}, nil},
		{"FROM:<>", mailArgs{}, nil},
		{"FROM:<> SIZE=1234 BODY=8BITMIME", mailArgs{size: 1234, body: "8BITMIME"}, nil},
		{"FROM:<a@example.org> BODY=binarymime SMTPUTF8", mailArgs{from: "a@example.org", body: "BINARYMIME", smtputf8: true}, nil},
		{"FROM:<a@example.org> BODY=7BIT AUTH=<> RET=HDRS ENVID=x", mailArgs{from: "a@example.org", body: "7BIT"}, nil},
		{"FROM:<@relay.example,@other.example:a@example.org>", mailArgs{from: "a@example.org"}, nil},
		{`FROM:<"john doe"@example.org>`, mailArgs{from: `"john doe"@example.org`}, nil},
		{"FROM:<jörg@exämple.org> SMTPUTF8", mailArgs{from: "jörg@exämple.org", smtputf8: true}, nil},
		{"FROM:<postmaster>", mailArgs{from: "postmaster"}, nil},
		{"FROM:a@example.org", mailArgs{}, errPathSyntax},
		{"FROM:<a@example.org", mailArgs{}, errPathSyntax},
		{"FROM:<a@example.org>SIZE=1", mailArgs{}, errPathSyntax},
		{"FROM:<a b@example.org>", mailArgs{}, errPathSyntax},
		{"FROM:<a@>", mailArgs{}, errPathSyntax},
		{"FROM:<@example.org>", mailArgs{}, errPathSyntax},
		{"FROM:<nobody>", mailArgs{}, errPathSyntax},
		{"FROM:<a\x00@example.org>", mailArgs{}, errPathSyntax},
		{"FROM:<\xff@example.org>", mailArgs{}, errPathSyntax},
		{"TO:<a@example.org>", mailArgs{}, errPathSyntax},
		{"FROM:<a@example.org> SIZE=x", mailArgs{}, errSizeSyntax},
		{"FROM:<a@example.org> SIZE=-1", mailArgs{}, errSizeSyntax},
		{"FROM:<a@example.org> SIZE=+5", mailArgs{}, errSizeSyntax},
		// RFC 1870 allows 20 digits: too big for any limit, not a syntax error.
		{"FROM:<a@example.org> SIZE=99999999999999999999", mailArgs{from: "a@example.org", size: math.MaxInt64}, nil},
		{"FROM:<a@example.org> SIZE", mailArgs{}, errSizeSyntax},
		{"FROM:<a@example.org> BODY=9BIT", mailArgs{}, errBodyValue},
		{"FROM:<a@example.org> SMTPUTF8=yes", mailArgs{}, errParamSyntax},
		{"FROM:<a@example.org> =x", mailArgs{}, errParamSyntax},
	} {
		got, err := parseMail(tc.arg)
		if err != tc.err || (err == nil && got != tc.want) {
			t.Errorf("parseMail(%q) = %+v, %v; want %+v, %v", tc.arg, got, err, tc.want, tc.err)
		}
	}
}

func TestParseRcpt(t *testing.T) {
	for _, tc := range []struct {
		arg, want string
		ok        bool
	}{
		{"TO:<journal@sensor.test>", "journal@sensor.test", true},
		{"to: <journal@sensor.test> NOTIFY=NEVER ORCPT=rfc822;x@y", "journal@sensor.test", true},
		{"TO:<Postmaster>", "Postmaster", true},
		{"TO:<>", "", false},
		{"TO:journal@sensor.test", "", false},
		{"FROM:<journal@sensor.test>", "", false},
		{"TO:<journal@sensor.test", "", false},
		{"TO:<a@b@>", "", false},
	} {
		got, err := parseRcpt(tc.arg)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseRcpt(%q) = %q, %v; want %q, ok %v", tc.arg, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseBDAT(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		size int64
		last bool
		ok   bool
	}{
		{"100", 100, false, true},
		{"0 LAST", 0, true, true},
		{"7 last", 7, true, true},
		{"", 0, false, false},
		{"-1", 0, false, false},
		{"+1", 0, false, false},
		{"1 FIRST", 0, false, false},
		{"1 LAST x", 0, false, false},
		{"99999999999999999999", 0, false, false},
	} {
		size, last, err := parseBDAT(tc.arg)
		if (err == nil) != tc.ok || size != tc.size || last != tc.last {
			t.Errorf("parseBDAT(%q) = %d, %v, %v", tc.arg, size, last, err)
		}
	}
}

func TestParseHello(t *testing.T) {
	for arg, want := range map[string]string{"client.test": "client.test", "[192.0.2.1] extra": "[192.0.2.1]", "": "", "  ": ""} {
		if got, ok := parseHello(arg); got != want || ok != (want != "") {
			t.Errorf("parseHello(%q) = %q, %v", arg, got, ok)
		}
	}
}
