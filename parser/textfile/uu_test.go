package textfile

import "testing"

func TestUUBegin(t *testing.T) {
	tests := []struct {
		line, name string
		ok         bool
	}{
		{"begin 644 invoice.pdf", "invoice.pdf", true},
		{"begin 0644 two words.txt ", "two words.txt", true},
		{"begin 644", "", true},
		{"begin-base64 644 b", "", false}, // base64 data, not uuencode
		{"beginning of the text", "", false},
		{"begin 64400 x", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		name, ok := UUBegin([]byte(tc.line))
		if name != tc.name || ok != tc.ok {
			t.Errorf("UUBegin(%q) = %q, %v; want %q, %v", tc.line, name, ok, tc.name, tc.ok)
		}
	}
}

func TestDecodeUULine(t *testing.T) {
	tests := []struct {
		line, want string
		problem    UUProblem
	}{
		{abc, "abc", UUOK},
		{abc + "X", "abc", UUOK}, // a checksum character
		{abc + "Xyz", "abc", UUTrailing},
		{"#86", "a`\x00", UUShort},
		{"`", "", UUOK},
		{"#8a)C", "", UUBad},
		{"hello", "", UUBad},
		{"", "", UUBad},
	}
	dst := make([]byte, MaxUULine)
	for _, tc := range tests {
		n, p := DecodeUULine(dst, []byte(tc.line))
		if string(dst[:n]) != tc.want || p != tc.problem {
			t.Errorf("DecodeUULine(%q) = %q, %d; want %q, %d", tc.line, dst[:n], p, tc.want, tc.problem)
		}
	}
}
