package parser

import (
	"reflect"
	"testing"

	"github.com/journalsensor/sensor/api"
)

func TestParseAuthResults(t *testing.T) {
	cases := []struct {
		in   string
		want api.AuthResult
	}{
		{ // Gmail's form
			`mx.google.com; dkim=pass header.i=@example.com header.s=s1 header.b=abc; spf=pass (google.com: domain of a@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=a@example.com; dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com`,
			api.AuthResult{AuthServID: "mx.google.com", Results: []api.AuthMethodResult{
				{Method: "dkim", Result: "pass", Props: map[string]string{"header.i": "@example.com"}},
				{Method: "spf", Result: "pass", Props: map[string]string{"smtp.mailfrom": "a@example.com"}},
				{Method: "dmarc", Result: "pass", Props: map[string]string{"header.from": "example.com"}},
			}},
		},
		{ // Microsoft 365 as journaled (formats/exo-journal-report-single-rcpt.eml, line 50)
			"spf=none (sender IP is 207.211.31.81)\r\n smtp.mailfrom=someothercompany.com; company.com; dkim=none (message not\r\n signed) header.d=none;company.com; dmarc=none action=none\r\n header.from=someothercompany.com;",
			api.AuthResult{Results: []api.AuthMethodResult{
				{Method: "spf", Result: "none", Props: map[string]string{"smtp.mailfrom": "someothercompany.com"}},
				{Method: "dkim", Result: "none", Props: map[string]string{"header.d": "none"}},
				{Method: "dmarc", Result: "none", Props: map[string]string{"header.from": "someothercompany.com"}},
			}},
		},
		{ // Microsoft 365: no authserv-id, comments everywhere, compauth is not a registered method
			`spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=evil.example; dkim=none (message not signed) header.d=none;dmarc=fail action=quarantine header.from=bank.example;compauth=fail reason=001`,
			api.AuthResult{Results: []api.AuthMethodResult{
				{Method: "spf", Result: "fail", Props: map[string]string{"smtp.mailfrom": "evil.example"}},
				{Method: "dkim", Result: "none", Props: map[string]string{"header.d": "none"}},
				{Method: "dmarc", Result: "fail", Props: map[string]string{"header.from": "bank.example"}},
				{Method: "compauth", Result: "fail", Reason: "001"},
			}},
		},
	}
	for _, c := range cases {
		got, ok := parseAuthResults(c.in)
		if !ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseAuthResults(%q)\n got %+v\nwant %+v", c.in, got, c.want)
		}
	}
	if _, ok := parseAuthResults(""); ok {
		t.Error("an empty field parsed")
	}
}

func TestStripComments(t *testing.T) {
	in := `a=1 (x (nested) y) b="(kept)" c=2`
	if got := stripComments(in); got != `a=1   b="(kept)" c=2` {
		t.Errorf("stripComments = %q", got)
	}
}
