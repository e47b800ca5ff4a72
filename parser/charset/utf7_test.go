package charset

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"golang.org/x/text/transform"
)

var utf7Cases = []struct {
	name, in, want string
}{
	// The examples of RFC 2152.
	{"rfc 2152 smiley", "Hi Mom -+Jjo--!", "Hi Mom -☺-!"},
	{"rfc 2152 run ended by a direct character", "A+ImIDkQ.", "A≢Α."},
	{"rfc 2152 japanese", "+ZeVnLIqe-", "日本語"},

	{"plus minus is a plus", "1 +- 1", "1 + 1"},
	{"run ended by punctuation", "+AGE!", "a!"},
	{"run ended by the text", "+AGEAYgBj", "abc"},
	{"surrogate pair", "+2D3eAA-", "😀"},
	{"markup in a run", "<p>+ADwAYQAgAGgAcgBlAGYAPQAiAHgAIgA+-</p>", `<p><a href="x"></p>`},

	{"high surrogate alone", "+2D0-", "\uFFFD"},
	{"high surrogate then a letter", "+2D0AQQ-", "\uFFFDA"},
	{"low surrogate alone", "+3gA-", "\uFFFD"},
	{"one character run", "+A-", "\uFFFD"},
	{"two character run", "+AB-", "\uFFFD"},
	{"eight-bit byte", "a\xe9b", "a\uFFFDb"},
	{"run cut by the end", "+ZeVnLIq", "日本\uFFFD"},
	{"nonzero padding bits", "+AGF-", "a\uFFFD"},
	{"empty", "", ""},
}

func TestUTF7(t *testing.T) {
	for _, tc := range utf7Cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := transform.String(utf7{}.NewDecoder(), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// A run split across Transform calls, at any byte, decodes as a whole one does.
func TestUTF7OneByteAtATime(t *testing.T) {
	for _, tc := range utf7Cases {
		t.Run(tc.name, func(t *testing.T) {
			r := transform.NewReader(iotest.OneByteReader(strings.NewReader(tc.in)), utf7{}.NewDecoder())
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

// Decoding into a small buffer asks for more room without losing state.
func TestUTF7ShortDst(t *testing.T) {
	in := strings.Repeat("+ZeVnLIqe-+2D3eAA-x", 50)
	want := strings.Repeat("日本語😀x", 50)
	d := utf7{}.NewDecoder()
	var out []byte
	dst := make([]byte, 7)
	src := []byte(in)
	for {
		nDst, nSrc, err := d.Transform(dst, src, true)
		out = append(out, dst[:nDst]...)
		src = src[nSrc:]
		if err == nil {
			break
		}
		if err != transform.ErrShortDst || nDst == 0 && nSrc == 0 {
			t.Fatalf("Transform: %v after %d bytes", err, len(out))
		}
	}
	if string(out) != want {
		t.Errorf("got %q", out)
	}
}

func TestUTF7Labels(t *testing.T) {
	const raw = "Hello +ADwAYQ- world"
	for _, label := range []string{"utf-7", "UTF-7", "unicode-1-1-utf-7", "x-utf-7", "csUnicode11UTF7"} {
		r, ok := NewReader(label, strings.NewReader(raw))
		if !ok {
			t.Errorf("NewReader(%q): label not known", label)
			continue
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "Hello <a world" {
			t.Errorf("NewReader(%q) = %q", label, got)
		}
		if s, ok := String(label, []byte(raw)); !ok || s != "Hello <a world" {
			t.Errorf("String(%q) = %q, %v", label, s, ok)
		}
	}
}

// Reset forgets a run left open, so a decoder can be used again.
func TestUTF7Reset(t *testing.T) {
	var d utf7Decoder
	dst := make([]byte, 16)
	if _, _, err := d.Transform(dst, []byte("+2D"), false); err != nil {
		t.Fatal(err)
	}
	d.Reset()
	n, _, err := d.Transform(dst, []byte("-x"), true)
	if err != nil || string(dst[:n]) != "-x" {
		t.Errorf("after Reset: %q, %v", dst[:n], err)
	}
}

// FuzzUTF7: the output is valid UTF-8 and does not depend on where the input is split.
func FuzzUTF7(f *testing.F) {
	for _, tc := range utf7Cases {
		f.Add(tc.in, uint8(1))
	}
	f.Fuzz(func(t *testing.T, in string, chunk uint8) {
		want, _, err := transform.String(utf7{}.NewDecoder(), in)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(want) {
			t.Fatalf("invalid UTF-8 %q", want)
		}
		n := 1 + int(chunk)
		r := transform.NewReader(iotest.HalfReader(chunkReader{strings.NewReader(in), n}), utf7{}.NewDecoder())
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("reads of %d: %q, whole: %q", n, got, want)
		}
	})
}

// chunkReader returns at most n bytes a Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }
