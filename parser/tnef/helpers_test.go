package tnef

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"slices"
	"testing"
	"unicode/utf16"
)

// The builders below write TNEF by the layout of [MS-OXTNEF] so that tests can say exactly
// what a stream holds. They share no code with the decoder.

const (
	tVersion    = 0x00089006
	tCodepage   = 0x00069007
	tClass      = 0x00078008
	tRendData   = 0x00069002
	tTitle      = 0x00018010
	tData       = 0x0006800F
	tAttachment = 0x00069005
	tMsgProps   = 0x00069003
)

func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// attr encodes one attribute with its checksum.
func attr(level byte, id uint32, data []byte) []byte {
	var sum uint16
	for _, b := range data {
		sum += uint16(b)
	}
	return cat([]byte{level}, le32(id), le32(uint32(len(data))), data, le16(sum))
}

// stream puts the signature and a legacy key before attrs.
func stream(attrs ...[]byte) []byte {
	return cat(append([][]byte{le32(0x223E9F78), le16(0x0101)}, attrs...)...)
}

// header is the usual message-level start of a stream.
func header(class string, cp uint32) [][]byte {
	return [][]byte{
		attr(1, tVersion, le32(0x00010000)),
		attr(1, tCodepage, cat(le32(cp), le32(0))),
		attr(1, tClass, []byte(class+"\x00")),
	}
}

func padded(b []byte) []byte {
	return cat(b, make([]byte, (4-len(b)%4)%4))
}

// vals encodes the values of a variable-size property: count, then length, bytes, padding.
func vals(vs ...[]byte) []byte {
	out := le32(uint32(len(vs)))
	for _, v := range vs {
		out = cat(out, le32(uint32(len(v))), padded(v))
	}
	return out
}

func prop(typ, id uint16, value []byte) []byte { return cat(le16(typ), le16(id), value) }

func props(ps ...[]byte) []byte { return cat(le32(uint32(len(ps))), cat(ps...)) }

func utf16z(s string) []byte {
	var out []byte
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, le16(u)...)
	}
	return append(out, 0, 0)
}

var iidMessage = []byte{0x07, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0, 0, 0, 0, 0, 0, 0x46}

// embedded is an attachment-level attAttachment holding inner as an attached message.
func embedded(inner []byte) []byte {
	return attr(2, tAttachment, props(
		prop(0x0003, 0x3705, le32(5)),
		prop(0x000D, 0x3701, vals(cat(iidMessage, inner))),
	))
}

// fileAttrs is a plain attachment: rendering data, title, data.
func fileAttrs(title string, data []byte) [][]byte {
	return [][]byte{
		attr(2, tRendData, make([]byte, 14)),
		attr(2, tTitle, []byte(title+"\x00")),
		attr(2, tData, data),
	}
}

// hashData is an onData that hashes everything and counts its calls.
type hashData struct{ calls int }

func (h *hashData) fn(r io.Reader) (any, error) {
	h.calls++
	s := sha256.New()
	if _, err := io.Copy(s, r); err != nil {
		return nil, err
	}
	return hex.EncodeToString(s.Sum(nil)), nil
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func decodeHash(t testing.TB, in []byte, lim Options) (*Result, *hashData) {
	t.Helper()
	h := &hashData{}
	res, err := Decode(bytes.NewReader(in), lim, h.fn)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if res == nil {
		t.Fatal("nil result")
	}
	return res, h
}

func codes(res *Result) []string {
	var out []string
	for _, a := range res.Anomalies {
		out = append(out, a.Code)
	}
	return out
}

func hasCode(res *Result, code string) bool { return slices.Contains(codes(res), code) }

func hasLimit(res *Result, name string) bool { return slices.Contains(res.LimitsHit, name) }

// checkInvariants holds for every result of any input.
func checkInvariants(t testing.TB, res *Result, lim Options) {
	t.Helper()
	lim = lim.withDefaults()
	if len(res.Files) > lim.MaxFiles {
		t.Errorf("%d files over MaxFiles %d", len(res.Files), lim.MaxFiles)
	}
	if len(res.Anomalies) > maxAnomalies {
		t.Errorf("%d anomalies", len(res.Anomalies))
	}
	for i, f := range res.Files {
		if f.Index != i {
			t.Errorf("file %d has Index %d", i, f.Index)
		}
		if f.Parent >= i || f.Parent < -1 {
			t.Errorf("file %d has Parent %d", i, f.Parent)
		}
		if f.Parent >= 0 && !res.Files[f.Parent].Embedded {
			t.Errorf("file %d has non-message parent %d", i, f.Parent)
		}
		if f.Size < 0 {
			t.Errorf("file %d has Size %d", i, f.Size)
		}
	}
	seen := map[string]bool{}
	for _, l := range res.LimitsHit {
		if seen[l] {
			t.Errorf("limit %s twice", l)
		}
		seen[l] = true
	}
}
