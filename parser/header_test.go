package parser

import (
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
)

func TestDecodeHeaderValue(t *testing.T) {
	tests := []struct {
		in, want string
		fixed    bool
	}{
		{"plain", "plain", false},
		{"=?utf-8?B?w6lsw6h2ZQ==?=", "élève", false},
		{"=?iso-8859-1?q?caf=E9?= au lait", "café au lait", false},
		{"=?utf-8?q?a?= =?utf-8?q?b?=", "ab", false}, // whitespace between encoded words goes
		{"caf\xe9", "café", true},                    // raw Latin-1 byte
		{"=?x-unknown?q?abc?=", "=?x-unknown?q?abc?=", false},
	}
	for _, tc := range tests {
		got, fixed := decodeHeaderValue(tc.in)
		if got != tc.want || fixed != tc.fixed {
			t.Errorf("decodeHeaderValue(%q) = %q, %v; want %q, %v", tc.in, got, fixed, tc.want, tc.fixed)
		}
	}
}

func TestParseAddresses(t *testing.T) {
	tests := []struct {
		in   string
		want []api.Address
		ok   bool
	}{
		{`"Doe, Jane" <jane@example.com>, bob@example.com`,
			[]api.Address{{Name: "Doe, Jane", Address: "jane@example.com"}, {Address: "bob@example.com"}}, true},
		{`=?utf-8?q?J=C3=BCrgen?= <j@example.de>`, []api.Address{{Name: "Jürgen", Address: "j@example.de"}}, true},
		// Nothing parses this, but the addresses in it are still evidence.
		{`Bank <<support@bank.example>>, broken@@x, "unterminated <u@example.com>`,
			[]api.Address{{Name: "Bank <", Address: "support@bank.example>"}, {Address: "broken@@x"},
				{Name: "unterminated", Address: "u@example.com"}}, false},
		{"", nil, true},
	}
	for _, tc := range tests {
		got, ok := parseAddresses(tc.in)
		if !reflect.DeepEqual(got, tc.want) || ok != tc.ok {
			t.Errorf("parseAddresses(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseDate(t *testing.T) {
	for in, want := range map[string]string{
		"Tue, 17 Jul 2018 14:13:25 +0100":  "2018-07-17T14:13:25+01:00",
		"17 Jul 2018 14:13:25 -0400 (EDT)": "2018-07-17T14:13:25-04:00",
		"Mon, 1 Jan 2024 00:00:00 GMT":     "2024-01-01T00:00:00Z",
		"yesterday":                        "",
		"2018-07-17 14:13":                 "",
	} {
		got, ok := parseDate(in)
		if got != want || ok != (want != "") {
			t.Errorf("parseDate(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestMsgIDs(t *testing.T) {
	got := msgIDs("<a@x>\r\n <b@y> junk <c@z>")
	if want := []string{"<a@x>", "<b@y>", "<c@z>"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q", got)
	}
	if got := msgIDs("bare@id other@id"); !reflect.DeepEqual(got, []string{"bare@id", "other@id"}) {
		t.Errorf("got %q", got)
	}
}

func TestCharsetReader(t *testing.T) {
	r, ok := charsetReader("windows-1251", strings.NewReader("\xcf\xf0\xe8\xe2\xe5\xf2"))
	if !ok {
		t.Fatal("windows-1251 unknown")
	}
	b, _ := io.ReadAll(r)
	if string(b) != "Привет" {
		t.Errorf("got %q", b)
	}
	if _, ok := charsetReader("x-no-such-charset", strings.NewReader("")); ok {
		t.Error("unknown charset reported as known")
	}
}
