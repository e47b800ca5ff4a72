package tnef

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/iotest"
)

// Small limits make the fuzzer reach the limit paths with small inputs.
var fuzzLimits = []Options{
	{},
	{MaxBytes: 300, MaxAttributes: 6, MaxFiles: 2, MaxPropBytes: 6, MaxDepth: 1},
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"multi.tnef", "badsum.tnef", "inner.tnef"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(nest(2, []byte("leaf")))
	f.Add(stream(append(header("IPM.Note", 932), fileAttrs("\x83e.txt", []byte("abc"))...)...))
	f.Add(stream(attr(2, tRendData, nil), attr(2, tData, nil),
		attr(2, tAttachment, props(prop(0x0102, 0x3701, vals([]byte("bin")))))))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, lim := range fuzzLimits {
			read := map[int]int64{}
			calls := 0
			onData := func(r io.Reader) (any, error) {
				i := calls
				calls++
				n, err := io.Copy(io.Discard, r)
				read[i] = n
				return i, err
			}
			res, err := Decode(bytes.NewReader(data), lim, onData)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			checkInvariants(t, res, lim)
			for _, fl := range res.Files {
				if fl.Data == nil {
					if !fl.Embedded {
						t.Fatalf("file %d got no onData call: %+v", fl.Index, fl)
					}
					continue
				}
				if n := read[fl.Data.(int)]; n != fl.Size {
					t.Fatalf("file %d: onData read %d bytes, Size %d", fl.Index, n, fl.Size)
				}
			}
			if lim.MaxBytes > 0 && int64(len(data)) <= lim.MaxBytes && hasLimit(res, LimitSize) {
				t.Fatalf("size limit hit on a %d-byte stream", len(data))
			}

			// Where the reads split the stream must not change the result.
			calls = 0
			res2, err := Decode(iotest.OneByteReader(bytes.NewReader(data)), lim, onData)
			if err != nil {
				t.Fatalf("Decode one byte at a time: %v", err)
			}
			if !reflect.DeepEqual(res, res2) {
				t.Fatalf("chunking changed the result:\n%+v\n%+v", res, res2)
			}
		}
	})
}
