package charset

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"unicode/utf16"
)

func utf16Bytes(s string, bigEndian bool) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		if bigEndian {
			b = append(b, byte(u>>8), byte(u))
		} else {
			b = append(b, byte(u), byte(u>>8))
		}
	}
	return b
}

const link = `<a href="https://x.example/é">x</a>`

var cases = []struct {
	name  string
	label string
	raw   []byte
	want  string
}{
	{"utf-16 with a big-endian mark", "utf-16", append([]byte{0xFE, 0xFF}, utf16Bytes(link, true)...), link},
	{"utf-16 with a little-endian mark", "UTF-16", append([]byte{0xFF, 0xFE}, utf16Bytes(link, false)...), link},
	{"utf-16 without a mark is little-endian", "utf-16", utf16Bytes(link, false), link},
	{"utf-16le label, big-endian mark", "utf-16le", append([]byte{0xFE, 0xFF}, utf16Bytes(link, true)...), link},
	{"utf-16be label believed without a mark", "utf-16be", utf16Bytes(link, true), link},
	{"utf-16be label, little-endian mark", "utf-16be", append([]byte{0xFF, 0xFE}, utf16Bytes(link, false)...), link},
	// The byte order is not guessed from the text: a sender could steer the guess with
	// characters whose low byte is zero (U+3000) and hide the rest.
	{"steered window", "utf-16le", utf16Bytes(strings.Repeat("\u3000", 300)+link, false), strings.Repeat("\u3000", 300) + link},
	// A mark under another label is text, as the label says.
	{"utf-8 label, utf-16 mark", "utf-8", append([]byte{0xFE, 0xFF}, link...), "\xfe\xff" + link},
	{"unlabelled, utf-16 mark", "", append([]byte{0xFE, 0xFF}, link...), "\xfe\xff" + link},
	{"windows-1252 label, utf-16 mark", "windows-1252", []byte("\xff\xfe<a href=\"https://x.example/\">"), "ÿþ<a href=\"https://x.example/\">"},
	{"plain utf-8", "UTF-8", []byte(link), link},
	{"latin-1 is windows-1252", "iso-8859-1", []byte("caf\xe9 \x80"), "café €"},
	{"quoted label", `"windows-1251"`, []byte("\xcf\xf0\xe8"), "При"},
	{"short utf-16", "utf-16", utf16Bytes("a", false), "a"},
	{"empty", "utf-16", nil, ""},
}

func TestNewReader(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := NewReader(tc.label, bytes.NewReader(tc.raw))
			if !ok {
				t.Fatalf("label %q not known", tc.label)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := String(tc.label, tc.raw)
			if !ok || got != tc.want {
				t.Errorf("got %q %v, want %q", got, ok, tc.want)
			}
		})
	}
}

// A long UTF-16 text is read through the stream in pieces; the byte order found at its head
// holds for all of it.
func TestNewReaderLongText(t *testing.T) {
	text := strings.Repeat("line of text with a link https://long.example/p ", 2000)
	r, _ := NewReader("utf-16", bytes.NewReader(append([]byte{0xFE, 0xFF}, utf16Bytes(text, true)...)))
	got, err := io.ReadAll(r)
	if err != nil || string(got) != text {
		t.Fatalf("got %d bytes (%v), want %d", len(got), err, len(text))
	}
}

func TestUnknownLabel(t *testing.T) {
	r, ok := NewReader("x-no-such-charset", strings.NewReader("abc"))
	if ok {
		t.Error("unknown label reported known")
	}
	if got, _ := io.ReadAll(r); string(got) != "abc" {
		t.Errorf("unknown label changed the text: %q", got)
	}
	if _, ok := String("x-no-such-charset", []byte("abc")); ok {
		t.Error("String: unknown label reported known")
	}
}

func TestUTF16Words(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// Little-endian, no mark: the label's order.
		{"=?UTF-16?B?aQBuAHYAbwBpAGMAZQAuAHAAZABmAC4AZQB4AGUA?=", "=?utf-8?b?aW52b2ljZS5wZGYuZXhl?="},
		// A big-endian mark wins over the little-endian default, and is dropped.
		{"a =?utf-16?B?/v8AaQBuAHYAbwBpAGMAZQAuAHAAZABmAC4AZQB4AGU=?= b", "a =?utf-8?b?aW52b2ljZS5wZGYuZXhl?= b"},
		{"=?utf-16le?q?a=00_=00?=", "=?utf-8?b?YSA=?="},
		// Left as they are: other charsets, bad base64, a cut escape.
		{"=?utf-8?B?w6k=?=", "=?utf-8?B?w6k=?="},
		{"=?utf-16?B?!!!?=", "=?utf-16?B?!!!?="},
		{"=?utf-16?Q?=0?=", "=?utf-16?Q?=0?="},
		{"no words", "no words"},
	} {
		if got := UTF16Words(tc.in); got != tc.want {
			t.Errorf("UTF16Words(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOtherByteOrder(t *testing.T) {
	for _, tc := range []struct {
		label string
		head  []byte
		ok    bool
	}{
		{"utf-16", []byte("\x00<"), true},
		{`"UTF-16"`, nil, true},
		{"unicode", nil, true},
		{"utf-16", []byte{0xFE, 0xFF, 0, '<'}, false}, // the mark settles it
		{"utf-16", []byte{0xFF, 0xFE, '<', 0}, false},
		{"utf-16le", nil, false}, // the label does
		{"utf-16be", nil, false},
		{"utf-8", nil, false},
	} {
		other, ok := OtherByteOrder(tc.label, tc.head)
		if ok != tc.ok || (ok && other != "utf-16be") {
			t.Errorf("OtherByteOrder(%q, % x) = %q, %v; want ok %v", tc.label, tc.head, other, ok, tc.ok)
		}
	}
}
