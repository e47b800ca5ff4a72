package parser

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/journalsensor/sensor/api"
)

// Past parallelAfter the hashes run on worker goroutines fed in chunks; whatever the write
// sizes, the sums must be those of the whole stream.
func TestParallelHashesMatchTheStream(t *testing.T) {
	data := make([]byte, 5<<20+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, fork := range []bool{false, true} {
		h := newHashes()
		h.mayFork = fork
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(300<<10)) // sizes across the chunk boundary
			h.Write(rest[:n])
			rest = rest[n:]
		}
		if fork && h.par == nil {
			t.Fatal("a 5 MiB stream did not move to the workers")
		}
		var a api.Attachment
		h.fill(&a)
		h.close() // a second close is harmless
		m, s1, s2 := md5.Sum(data), sha1.Sum(data), sha256.Sum256(data)
		if a.Size != int64(len(data)) || a.MD5 != hex.EncodeToString(m[:]) ||
			a.SHA1 != hex.EncodeToString(s1[:]) || a.SHA256 != hex.EncodeToString(s2[:]) {
			t.Errorf("fork=%v: %+v", fork, a)
		}
	}
}
