package uploader

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// FuzzEachLine feeds batch files a split reads back: any bytes as the file, and any bytes as
// the NDJSON inside a valid gzip stream. Nothing may panic, no line may be longer than the
// bound or hold a newline, and a readable stream must come back line for line.
func FuzzEachLine(f *testing.F) {
	for _, s := range []string{
		"",
		"{}\n",
		"{\"id\":\"01ARZ3NDEKTSV4RRFFQ69G5FAV\"}\n{\"n\":2}\n",
		"\n\n\n",
		"no newline at the end",
		"{\"a\":\"\r\"}\r\n",
		strings.Repeat("x", 300) + "\nshort\n",
		"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", // a gzip header and nothing more
	} {
		f.Add([]byte(s))
	}
	const maxLine = 256
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(l []byte) error {
			if len(l) == 0 || len(l) > maxLine || bytes.IndexByte(l, '\n') >= 0 {
				t.Fatalf("bad line %q", l)
			}
			if id := lineID(l); id != "" {
				if v, err := ulid.ParseStrict(id); err != nil || v.String() != id {
					t.Fatalf("lineID returned %q, not a canonical ULID", id)
				}
			}
			_ = validLine(l)
			return nil
		}
		// As the whole file.
		if _, err := eachLine(bytes.NewReader(data), maxLine, check); err != nil {
			t.Fatal(err)
		}
		// As the data inside a good gzip stream.
		var got []string
		complete, err := eachLine(bytes.NewReader(gz(t, string(data))), maxLine, func(l []byte) error {
			if err := check(l); err != nil {
				return err
			}
			got = append(got, string(l))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		tooLong := false
		for l := range strings.SplitSeq(string(data), "\n") {
			if len(l) > maxLine {
				tooLong = true
				break
			}
			if l != "" {
				want = append(want, l)
			}
		}
		if complete == tooLong {
			t.Fatalf("complete = %v with a line over the bound: %v", complete, tooLong)
		}
		if !tooLong && !slices.Equal(got, want) {
			t.Fatalf("lines = %q, want %q", got, want)
		}
	})
}

// FuzzRetryAfter feeds Retry-After values a pipeline (or anything between) may send.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "0", "-1", "Sun, 01 Mar 2026 12:00:30 GMT", "Sunday, 01-Mar-26 12:01:00 GMT",
		"Sun Mar  1 12:00:30 2026", "99999999999999999999", "9223372036854775807", " 5 ", "soon", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := retryAfter(v, now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("retryAfter(%q) = %v, %v", v, d, ok)
		}
	})
}
