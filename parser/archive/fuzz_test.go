package archive

import (
	"archive/zip"
	"bytes"
	"io"
	"testing"
)

// FuzzList checks that any input gives a result, never a panic, that List reads all of it,
// and that the result keeps its invariants. A small budget and small limits let the fuzzer
// reach the limit paths.
func FuzzList(f *testing.F) {
	inner := makeZip(f, file{name: "i.txt", data: []byte("inner inner inner"), method: zip.Deflate})
	for _, seed := range [][]byte{
		nil,
		[]byte("PK\x03\x04"),
		makeZip(f),
		makeZip(f, file{name: "a.txt", data: []byte("hello hello hello"), method: zip.Deflate}),
		makeZip(f, file{name: "s", data: []byte("stored PK\x07\x08 data"), method: zip.Store}),
		makeZip(f, file{name: "r", data: []byte("raw"), method: zip.Store, raw: true},
			file{name: "d/", method: zip.Store}),
		makeZip(f, file{name: "in.zip", data: inner, method: zip.Deflate},
			file{name: "in2.zip", data: inner, method: zip.Store}),
		makeZip(f, file{name: "e", data: []byte("xxxxxxxxxxxx"), method: zip.Deflate, raw: true, flags: 1}),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, b := range []*Budget{NewBudget(0), NewBudget(100)} {
			cr := &countReader{r: bytes.NewReader(data)}
			var content bytes.Buffer
			res, err := List(cr, b, Options{MaxMembers: 20, MaxAnomalies: 20, Sniff: func(h []byte) string { return "" },
				Content: func(m *Member) (io.Writer, error) { content.Reset(); return &content, nil }})
			if err != nil {
				t.Fatal(err)
			}
			if cr.n != int64(len(data)) {
				t.Fatalf("read %d of %d", cr.n, len(data))
			}
			checkInvariants(t, res)
			if len(res.Members) > 20 || len(res.Anomalies) > 20 || b.Remaining() < 0 {
				t.Fatalf("%d members, %d anomalies, budget %d", len(res.Members), len(res.Anomalies), b.Remaining())
			}
		}
	})
}
