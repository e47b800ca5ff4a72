package tnef

import (
	"bytes"
	"strings"
	"unicode/utf16"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// defaultCodepage is what Outlook writes for Western European mail and the best guess when
// attOemCodepage is missing or names a code page we do not know.
const defaultCodepage = 1252

// codepageUTF8 is the Windows number of UTF-8.
const codepageUTF8 = 65001

// encodingFor maps a Windows code page number to its decoder; nil means UTF-8.
func encodingFor(cp uint32) encoding.Encoding {
	switch cp {
	case codepageUTF8:
		return nil
	case 437:
		return charmap.CodePage437
	case 850:
		return charmap.CodePage850
	case 852:
		return charmap.CodePage852
	case 855:
		return charmap.CodePage855
	case 858:
		return charmap.CodePage858
	case 860:
		return charmap.CodePage860
	case 862:
		return charmap.CodePage862
	case 863:
		return charmap.CodePage863
	case 865:
		return charmap.CodePage865
	case 866:
		return charmap.CodePage866
	case 874:
		return charmap.Windows874
	case 932:
		return japanese.ShiftJIS
	case 936:
		return simplifiedchinese.GBK
	case 949:
		return korean.EUCKR
	case 950:
		return traditionalchinese.Big5
	case 1250:
		return charmap.Windows1250
	case 1251:
		return charmap.Windows1251
	case 1253:
		return charmap.Windows1253
	case 1254:
		return charmap.Windows1254
	case 1255:
		return charmap.Windows1255
	case 1256:
		return charmap.Windows1256
	case 1257:
		return charmap.Windows1257
	case 1258:
		return charmap.Windows1258
	case 10000:
		return charmap.Macintosh
	case 10007:
		return charmap.MacintoshCyrillic
	case 20866:
		return charmap.KOI8R
	case 21866:
		return charmap.KOI8U
	case 20932, 51932:
		return japanese.EUCJP
	case 28591:
		return charmap.ISO8859_1
	case 28592:
		return charmap.ISO8859_2
	case 28593:
		return charmap.ISO8859_3
	case 28594:
		return charmap.ISO8859_4
	case 28595:
		return charmap.ISO8859_5
	case 28596:
		return charmap.ISO8859_6
	case 28597:
		return charmap.ISO8859_7
	case 28598, 38598:
		return charmap.ISO8859_8
	case 28599:
		return charmap.ISO8859_9
	case 28603:
		return charmap.ISO8859_13
	case 28605:
		return charmap.ISO8859_15
	case 50220, 50221, 50222:
		return japanese.ISO2022JP
	case 52936:
		return simplifiedchinese.HZGB2312
	case 54936:
		return simplifiedchinese.GB18030
	}
	return charmap.Windows1252
}

// decodeString8 turns code page bytes into UTF-8, dropping the trailing NULs that TNEF
// strings carry. It never fails: undecodable bytes become U+FFFD.
func decodeString8(b []byte, cp uint32) string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return ""
	}
	enc := encodingFor(cp)
	if enc == nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		out, _ = charmap.Windows1252.NewDecoder().Bytes(b)
	}
	return strings.ToValidUTF8(string(out), "\uFFFD")
}

// decodeUnicode turns UTF-16LE bytes into UTF-8, dropping an odd last byte and trailing NULs.
// Unpaired surrogates become U+FFFD.
func decodeUnicode(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	for len(u) > 0 && u[len(u)-1] == 0 {
		u = u[:len(u)-1]
	}
	return string(utf16.Decode(u))
}
