package textfile

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func FuzzScanner(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.txt")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(7), uint8(0))
	}
	f.Add([]byte("begin 644 a\n"+abc+"\n`\nend\n=ybegin part=1 size=3 name=y\r\n=ypart begin=1 end=3\r\n\x8b*=}\r\n=yend size=3 pcrc32=0\r\n"), uint8(1), uint8(40))
	f.Add([]byte("begin-base64 644 b\nQUJD\nRA==\nRQ\n====\n"), uint8(3), uint8(20))
	f.Add([]byte("=ybegin name=y\n"+string(make([]byte, 100))+"=\n=yend\n"), uint8(5), uint8(16))
	f.Fuzz(func(t *testing.T, data []byte, chunk, maxLine uint8) {
		// Small limits reach the overlong and MaxBlocks paths with small inputs.
		lim := Options{MaxLine: int(maxLine), MaxBlocks: 3}
		want, s := scan(t, data, lim, whole)
		if len(want) > 3 {
			t.Fatalf("%d blocks reported with MaxBlocks 3", len(want))
		}
		var out int64
		for _, b := range want {
			out += b.Size
			if len(b.Anomalies) > maxNotes || len(b.Name) > maxName {
				t.Fatalf("unbounded block %v", b)
			}
		}
		// A uuencoded line of one length character announces at most 63 bytes.
		if out > 63*int64(len(data)) {
			t.Fatalf("%d bytes out of %d in", out, len(data))
		}
		if s.Dropped() > 0 && len(want) != 3 {
			t.Fatalf("dropped %d with only %d reported", s.Dropped(), len(want))
		}
		// Where the Writes split the text must not matter.
		n := 1 + int(chunk)
		got, _ := scan(t, data, lim, func(p []byte) [][]byte {
			var out [][]byte
			for len(p) > 0 {
				k := min(n, len(p))
				out = append(out, p[:k])
				p = p[k:]
			}
			return out
		})
		if !slices.EqualFunc(got, want, sameFound) {
			t.Fatalf("chunks of %d:\n got %v\nwant %v", n, got, want)
		}
	})
}
