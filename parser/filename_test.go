package parser

import (
	"testing"

	"github.com/journalsensor/sensor/parser/walker"
)

// TestFilenameEncodedWords: RFC 2047 encoded words in name and filename parameters are not
// standard (RFC 2047 §5 forbids them in a quoted-string; RFC 2231 is the way), but Outlook,
// Gmail and most webmail write them and every client decodes them. A name left encoded hides
// the extension from anything that matches on it.
func TestFilenameEncodedWords(t *testing.T) {
	tests := []struct {
		name, disposition, ctype, want string
	}{
		// Cases enmime's parameter parser already handles; kept so they stay handled.
		{"quoted", `attachment; filename="=?UTF-8?B?cmVwb3J0LmV4ZQ==?="`, "", "report.exe"},
		{"unquoted", `attachment; filename==?UTF-8?B?cmVwb3J0LmV4ZQ==?=`, "", "report.exe"},
		{"inside text", `attachment; filename="inv =?utf-8?q?caf=C3=A9?= 2024.pdf"`, "", "inv café 2024.pdf"},
		{"several words", `attachment; filename="=?utf-8?B?w6lsw6h2ZQ==?= =?utf-8?B?LmV4ZQ==?="`, "", "élève.exe"},
		{"folded between words", "attachment; filename=\"=?utf-8?B?w6lsw6h2ZQ==?=\r\n =?utf-8?B?LmV4ZQ==?=\"", "", "élève.exe"},
		{"folded inside a word", "attachment; filename=\"=?utf-8?B?w6lsw6h2\r\n ZQ==?=.exe\"", "", "élève.exe"},
		{"RFC 2231 continuations of words", `attachment; filename*0="=?utf-8?B?w6lsw6h2ZQ==?="; filename*1="=?utf-8?B?LmV4ZQ==?="`, "", "élève.exe"},
		{"RFC 2231 continuation splits a word", `attachment; filename*0="=?utf-8?B?w6lsw6h2"; filename*1="ZQ==?=.exe"`, "", "élève.exe"},
		{"RFC 2231 percent-encoded word", `attachment; filename*=UTF-8''%3D%3Futf-8%3FB%3Fw6lsw6h2ZQ%3D%3D%3F%3D.exe`, "", "élève.exe"},
		{"RFC 2231 other charset, raw word", `attachment; filename*=iso-8859-1''=?utf-8?Q?caf=C3=A9?=.exe`, "", "café.exe"},
		{"windows-1251", `attachment; filename="=?windows-1251?B?z/Do4uXy?=.exe"`, "", "Привет.exe"},
		{"ks_c_5601-1987", `attachment; filename="=?ks_c_5601-1987?B?x9Gx27qvyK8=?=.hwp"`, "", "한글변환.hwp"},
		{"lowercase b, UTF8 alias", `attachment; filename="=?UTF8?b?w6lsw6h2ZQ==?=.exe"`, "", "élève.exe"},
		{"name in Content-Type", "", `application/octet-stream; name="=?utf-8?Q?r=C3=A9sum=C3=A9.exe?="`, "résumé.exe"},

		// Cases that came out encoded, or with no name at all.
		{"RFC 2231 language in the word", `attachment; filename="=?utf-8*en?B?w6lsw6h2ZQ==?=.exe"`, "", "élève.exe"},
		{"language, Q encoding", `attachment; filename="=?UTF-8*en-US?Q?=C3=A9l=C3=A8ve?=.exe"`, "", "élève.exe"},
		{"base64 without padding", `attachment; filename="=?utf-8?B?w6lsw6h2ZQ?=.exe"`, "", "élève.exe"},
		{"base64 with short padding", `attachment; filename="=?utf-8?B?w6lsw6h2ZQ=?=.exe"`, "", "élève.exe"},
		{"several unpadded words", `attachment; filename="=?utf-8?B?w6lsw6h2ZQ?= =?utf-8?B?LmV4ZQ?="`, "", "élève.exe"},
		{"UTF-16BE without a mark", `attachment; filename="=?UTF-16BE?B?AGkAbgB2AG8AaQBjAGUALgBwAGQAZgAuAGUAeABl?="`, "", "invoice.pdf.exe"},
		{"UTF-16 with a big-endian mark", `attachment; filename="=?utf-16?B?/v8AaQBuAHYAbwBpAGMAZQAuAHAAZABmAC4AZQB4AGU=?="`, "", "invoice.pdf.exe"},
		{"UTF-16 little-endian without a mark", `attachment; filename="=?utf-16?B?aQBuAHYAbwBpAGMAZQAuAHAAZABmAC4AZQB4AGUA?="`, "", "invoice.pdf.exe"},
		{"UTF-16BE, Q encoding", `attachment; filename="=?UTF-16BE?Q?=00=61=00=2E=00=65=00=78=00=65?="`, "", "a.exe"},
		{"name in Content-Type, unpadded", "", `application/octet-stream; name="=?utf-8?B?cmVwb3J0LmV4ZQ?="`, "report.exe"},
		{"filename* holding a raw word", `attachment; filename*=utf-8''=?utf-8?B?cmVwb3J0LmV4ZQ==?=`, "", "report.exe"},
		{"filename* holding a raw word, non-ASCII", `attachment; filename*=utf-8''=?utf-8?B?w6lsw6h2ZQ==?=.exe`, "", "élève.exe"},
		{"filename* raw word, continuation", `attachment; filename*0*=utf-8''=?utf-8?B?w6ls; filename*1*=w6h2ZQ==?=.exe`, "", "élève.exe"},
		{"filename* quoted, no charset", `attachment; filename*="=?utf-8?B?cmVwb3J0LmV4ZQ==?="`, "", "report.exe"},
		{"filename* quoted, plain", `attachment; filename*="report.exe"`, "", "report.exe"},

		// Left alone: not encoded words, or ones no client can decode.
		{"unknown charset", `attachment; filename="=?x-unknown?Q?abc?=.exe"`, "", "=?x-unknown?Q?abc?=.exe"},
		{"unknown encoding letter", `attachment; filename="=?utf-8?X?abc?=.exe"`, "", "=?utf-8?X?abc?=.exe"},
		{"question marks in a plain name", `attachment; filename="why?=no.txt"`, "", "why?=no.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.ctype
			if ct == "" {
				ct = "application/octet-stream"
			}
			h := walker.Header{Fields: []walker.Field{{Name: "Content-Type", Value: ct}}}
			if tc.disposition != "" {
				h.Fields = append(h.Fields, walker.Field{Name: "Content-Disposition", Value: tc.disposition})
			}
			_, params, _ := walker.ParseMediaType(ct)
			st := &state{}
			a := st.attachmentMeta(&walker.Part{Header: h, MediaType: "application/octet-stream", Params: params, Path: "1"}, &msgCtx{})
			if a.Filename != tc.want {
				t.Errorf("filename %q, want %q", a.Filename, tc.want)
			}
		})
	}
}
