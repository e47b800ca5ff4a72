package archive

import (
	"archive/zip"
	"bytes"
	"testing"
)

// BenchmarkList32MiBDeflate lists and hashes one 32 MiB deflated member of text; MB/s is of
// decompressed bytes.
func BenchmarkList32MiBDeflate(b *testing.B) {
	benchMember(b, zip.Deflate)
}

// BenchmarkList32MiBStored is the same member stored, with a data descriptor: the
// descriptor search and hashing without inflation.
func BenchmarkList32MiBStored(b *testing.B) {
	benchMember(b, zip.Store)
}

func benchMember(b *testing.B, method uint16) {
	payload := text(32<<20, 42)
	data := makeZip(b, file{name: "big.txt", data: payload, method: method})
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := List(bytes.NewReader(data), NewBudget(0), Options{})
		if err != nil || !res.Members[0].Hashed {
			b.Fatal(err, res.Members)
		}
	}
}

// BenchmarkBomb2GiB lists a single 2 GiB member of zeros: the cost is the 64 MiB budget.
func BenchmarkBomb2GiB(b *testing.B) {
	data := bomb(b, bombMember{mib: 2048, desc: true})
	b.ReportAllocs()
	for b.Loop() {
		res, err := List(bytes.NewReader(data), NewBudget(0), Options{})
		if err != nil || res.Members[0].Hashed {
			b.Fatal(err, res.Members)
		}
	}
}

// BenchmarkBomb100x20MiB lists 100 members of 20 MiB of zeros with data descriptors.
func BenchmarkBomb100x20MiB(b *testing.B) {
	ms := make([]bombMember, 100)
	for i := range ms {
		ms[i] = bombMember{mib: 20, desc: true}
	}
	data := bomb(b, ms...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := List(bytes.NewReader(data), NewBudget(0), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
