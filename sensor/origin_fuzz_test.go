package sensor

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzTenantHeaders drives the tap and the tenant proof with a fuzzed header block, and a
// tenant header built from fuzzed parts. Properties:
//
//   - any bytes: no panic, and the verdict does not depend on how the reads were cut;
//   - a block whose only tenant headers name a pinned tenant is accepted, whatever else it
//     holds, however the name is cased, the value folded or the lines ended;
//   - a block whose only tenant headers name tenants not pinned is refused.
func FuzzTenantHeaders(f *testing.F) {
	f.Add([]byte("Received: from x\r\nSubject: hi\r\n\r\nbody"), "fabrikam.onmicrosoft.com", uint8(0))
	f.Add([]byte("X-OriginatorOrg: contoso.onmicrosoft.com\nX-MS-Exchange-CrossTenant-Id: 3f2504e0-4f89-11d3-9a0c-0305e82c3301\n\n"), "", uint8(7))
	f.Add([]byte("From x\n \tA: b\nno colon\nC: d\n"), "CONTOSO.onmicrosoft.com.", uint8(3))
	f.Add([]byte("\r\n"), "3F2504E0-4F89-11D3-9A0C-0305E82C3301", uint8(12))
	f.Add([]byte("x-originatororg : \r\n contoso.onmicrosoft.com\r\nX-A: 1\r\n"), "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}", uint8(255))
	const pinnedDomain, pinnedID = "contoso.onmicrosoft.com", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	o, err := NewOrigin(OriginConfig{Tenants: []string{pinnedDomain, pinnedID}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, block []byte, value string, shape uint8) {
		// Any bytes.
		whole := judgeThrough(o, strings.NewReader(string(block)))
		if byOne := judgeThrough(o, iotest.OneByteReader(strings.NewReader(string(block)))); byOne.reason != whole.reason || byOne.tenant != whole.tenant {
			t.Fatalf("read whole: %+v; byte by byte: %+v", whole, byOne)
		}

		// The other fields: those of the fuzzed block that parse as fields, tenant headers
		// left out.
		eol := "\r\n"
		if shape&1 != 0 {
			eol = "\n"
		}
		var b strings.Builder
		for _, fld := range parseHeaderBlock(block) {
			switch strings.ToLower(fld.name) {
			case hdrOriginatorOrg, hdrCrossTenantID, hdrOrganizationID:
				continue
			}
			b.WriteString(fld.name + ": " + strings.NewReplacer("\r", "", "\n", "").Replace(fld.value) + eol)
		}
		others := b.String()
		tenantLine := func(id bool, v string) string {
			name := "X-OriginatorOrg"
			if id {
				name = []string{"X-MS-Exchange-CrossTenant-Id", "X-MS-Exchange-Organization-Id"}[shape>>7]
			}
			switch shape >> 1 & 3 {
			case 1:
				name = strings.ToLower(name)
			case 2:
				name = strings.ToUpper(name)
			}
			sep := ": "
			if shape&8 != 0 {
				sep = ":" + eol + "\t " // folded: the value on a continuation line
			}
			return name + sep + v + eol
		}
		at := func(line string) string { // the tenant line first, last or in the middle
			switch shape >> 4 & 3 {
			case 0:
				return line + others
			case 1:
				return others + line
			}
			half := strings.Index(others, eol)
			if half < 0 {
				return line + others
			}
			return others[:half+len(eol)] + line + others[half+len(eol):]
		}

		pinned := []struct {
			id bool
			v  string
		}{{false, pinnedDomain}, {false, strings.ToUpper(pinnedDomain) + "."}, {true, pinnedID}, {true, strings.ToUpper(pinnedID)}}
		p := pinned[int(shape>>5&3)]
		msg := at(tenantLine(p.id, p.v)) + eol + "body" + eol
		if v := judgeThrough(o, strings.NewReader(msg)); v.reason != "" || v.tenant == "" {
			t.Fatalf("only a pinned tenant named, refused: %+v\n%q", v, msg)
		}

		v := strings.NewReplacer("\r", "", "\n", "").Replace(value)
		id := isGUID(strings.Trim(strings.TrimSpace(v), "{}"))
		norm := strings.ToLower(strings.TrimSpace(v))
		if id && strings.Trim(norm, "{}") == pinnedID || !id && normalDomain(norm) == pinnedDomain {
			return
		}
		msg = at(tenantLine(id, v)) + eol + "body" + eol
		if got := judgeThrough(o, strings.NewReader(msg)); got.reason == "" {
			t.Fatalf("only a foreign tenant %q named, accepted: %+v\n%q", v, got, msg)
		}
	})
}

// judgeThrough reads r through a tap as the intake does and judges its header.
func judgeThrough(o *Origin, r io.Reader) originVerdict {
	tap := newHeaderTap(r, maxOriginHeaderBytes)
	if _, err := io.Copy(io.Discard, tap); err != nil {
		panic(err)
	}
	return o.judge(tap.header())
}
