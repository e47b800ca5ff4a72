package tnef

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

// MAPI property types ([MS-OXCDATA] 2.11.1) that TNEF encodes.
const (
	ptShort    = 0x0002
	ptLong     = 0x0003
	ptFloat    = 0x0004
	ptDouble   = 0x0005
	ptCurrency = 0x0006
	ptAppTime  = 0x0007
	ptError    = 0x000A
	ptBoolean  = 0x000B
	ptObject   = 0x000D
	ptI8       = 0x0014
	ptString8  = 0x001E
	ptUnicode  = 0x001F
	ptSysTime  = 0x0040
	ptCLSID    = 0x0048
	ptSvrEID   = 0x00FB
	ptBinary   = 0x0102

	mvFlag     = 0x1000
	mvInstance = 0x2000

	// namedBase is the first property id that is a named property, whose tag is followed
	// by its name.
	namedBase = 0x8000
)

// MAPI property ids this package reads.
const (
	prMessageClass       = 0x001A
	prDisplayName        = 0x3001
	prAttachData         = 0x3701 // PR_ATTACH_DATA_BIN as PT_BINARY, PR_ATTACH_DATA_OBJ as PT_OBJECT
	prAttachExtension    = 0x3703
	prAttachFilename     = 0x3704
	prAttachMethod       = 0x3705
	prAttachLongFilename = 0x3707
	prAttachMIMETag      = 0x370E
	prAttachContentID    = 0x3712
)

// iidIMessage is IID_IMessage {00020307-0000-0000-C000-000000000046} as stored: the
// interface of a PT_OBJECT value that holds an embedded message as a nested TNEF stream.
var iidIMessage = [16]byte{0x07, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0, 0, 0, 0, 0, 0, 0x46}

// errStopList ends a property list that cannot be walked further; its anomaly is recorded.
var errStopList = errors.New("tnef: property list abandoned")

// fixedSize is the encoded size of one value of a fixed-size type (16-bit values are padded
// to four bytes), 0 for a variable-size type and -1 for a type TNEF does not define.
func fixedSize(base uint16) int64 {
	switch base {
	case ptShort, ptLong, ptFloat, ptError, ptBoolean:
		return 4
	case ptDouble, ptCurrency, ptAppTime, ptI8, ptSysTime:
		return 8
	case ptCLSID:
		return 16
	case ptObject, ptString8, ptUnicode, ptSvrEID, ptBinary:
		return 0
	}
	return -1
}

// properties walks the MAPI property list of attMsgProps (att false) or attAttachment (att
// true), keeping what the Result needs and streaming attachment bytes to onData.
func (d *decoder) properties(sp *span, lv *level, att bool) error {
	err := d.walk(sp, lv, att)
	switch {
	case err == errStopList:
		return nil
	case ended(err) && sp.left == 0:
		d.anomaly(AnomalyBadProperty, "property list runs past the end of its attribute")
		return nil
	}
	return err
}

func (d *decoder) walk(sp *span, lv *level, att bool) error {
	if err := readFull(sp, d.hdr[:4]); err != nil {
		return err
	}
	count := binary.LittleEndian.Uint32(d.hdr[:4])
	// Every property takes at least four bytes of the attribute, so the loop ends with it.
	for range count {
		if err := readFull(sp, d.hdr[:4]); err != nil {
			return err
		}
		typ := binary.LittleEndian.Uint16(d.hdr[:2])
		id := binary.LittleEndian.Uint16(d.hdr[2:4])
		named := id >= namedBase
		if named {
			if err := d.skipName(sp); err != nil {
				return err
			}
		}
		if err := d.value(sp, lv, att, typ, id, named); err != nil {
			return err
		}
	}
	return nil
}

// skipName skips a named property's name: GUID, kind, then a number or a counted UTF-16
// string padded to four bytes.
func (d *decoder) skipName(sp *span) error {
	if err := readFull(sp, d.hdr[:20]); err != nil {
		return err
	}
	switch kind := binary.LittleEndian.Uint32(d.hdr[16:20]); kind {
	case 0:
		return skip(sp, 4, d.buf)
	case 1:
		if err := readFull(sp, d.hdr[:4]); err != nil {
			return err
		}
		n := int64(binary.LittleEndian.Uint32(d.hdr[:4]))
		return skip(sp, n+pad4(n), d.buf)
	default:
		d.anomaly(AnomalyBadProperty, "named property kind %d", kind)
		return errStopList
	}
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }

// value reads one property's value or values.
func (d *decoder) value(sp *span, lv *level, att bool, typ, id uint16, named bool) error {
	base := typ &^ (mvFlag | mvInstance)
	multi := typ&mvFlag != 0
	size := fixedSize(base)
	if size < 0 {
		d.anomaly(AnomalyBadProperty, "property %#04x has unknown type %#04x", id, typ)
		return errStopList
	}
	count := uint32(1)
	if multi || size == 0 {
		if err := readFull(sp, d.hdr[:4]); err != nil {
			return err
		}
		count = binary.LittleEndian.Uint32(d.hdr[:4])
	}
	// Only the first value of a single-valued, unnamed property can be one of ours.
	ours := !named && !multi
	for j := range count {
		first := ours && j == 0
		if size > 0 {
			if first && att && id == prAttachMethod && base == ptLong {
				if err := readFull(sp, d.hdr[:4]); err != nil {
					return err
				}
				d.res.Files[lv.cur].Method = int(int32(binary.LittleEndian.Uint32(d.hdr[:4])))
				continue
			}
			if err := skip(sp, size, d.buf); err != nil {
				return err
			}
			continue
		}
		if err := readFull(sp, d.hdr[:4]); err != nil {
			return err
		}
		n := int64(binary.LittleEndian.Uint32(d.hdr[:4]))
		vs := &span{parent: sp, left: n}
		if first {
			if err := d.variable(vs, lv, att, base, id); err != nil {
				return err
			}
		}
		if err := skip(vs, vs.left, d.buf); err != nil {
			return err
		}
		if err := skip(sp, pad4(n), d.buf); err != nil {
			return err
		}
	}
	return nil
}

// variable handles one variable-size value that might be ours; the caller skips what it
// leaves.
func (d *decoder) variable(vs *span, lv *level, att bool, base, id uint16) error {
	isString := base == ptString8 || base == ptUnicode
	if !att {
		if id == prMessageClass && isString && !lv.classAttr {
			s, err := d.str(vs, lv, base, id)
			if s != "" {
				lv.class = s
			}
			return err
		}
		return nil
	}
	f := &d.res.Files[lv.cur]
	var dst *string
	switch id {
	case prAttachData:
		switch base {
		case ptBinary:
			return d.data(vs, lv, vs.left, nil, "PR_ATTACH_DATA_BIN")
		case ptObject:
			return d.object(vs, lv)
		}
		return nil
	case prAttachLongFilename:
		dst = &f.LongFilename
	case prAttachFilename:
		dst = &f.Filename
	case prAttachExtension:
		dst = &f.Extension
	case prAttachMIMETag:
		dst = &f.MIMEType
	case prAttachContentID:
		dst = &f.ContentID
	case prDisplayName:
		dst = &f.DisplayName
	}
	if dst == nil || !isString {
		return nil
	}
	s, err := d.str(vs, lv, base, id)
	if s != "" {
		*dst = s
	}
	return err
}

// str reads a PT_STRING8 or PT_UNICODE value, or skips it with an anomaly when it is larger
// than MaxPropBytes.
func (d *decoder) str(vs *span, lv *level, base, id uint16) (string, error) {
	if vs.left > int64(d.opts.MaxPropBytes) {
		d.anomaly(AnomalyPropertyTooLarge, "property %#04x of %d bytes", id, vs.left)
		return "", nil
	}
	b, err := readAll(vs)
	if err != nil {
		return "", err
	}
	if base == ptUnicode {
		return decodeUnicode(b), nil
	}
	return decodeString8(b, lv.cp), nil
}

// object handles PR_ATTACH_DATA_OBJ: an interface id, then the object. An embedded message
// is a nested TNEF stream, decoded as a level of its own; any other object (an OLE storage)
// is the file's bytes.
func (d *decoder) object(vs *span, lv *level) error {
	const what = "PR_ATTACH_DATA_OBJ"
	if vs.left < int64(len(iidIMessage)) {
		return d.data(vs, lv, vs.left, nil, what)
	}
	var iid [16]byte
	if err := readFull(vs, iid[:]); err != nil {
		return err
	}
	if iid != iidIMessage {
		return d.data(vs, lv, vs.left, nil, what)
	}
	idx := lv.cur
	d.res.Files[idx].Embedded = true
	if lv.depth >= d.opts.MaxDepth {
		d.limit(LimitDepth)
		return d.data(vs, lv, vs.left, nil, what)
	}
	n := vs.left
	var sig [4]byte
	k, err := io.ReadFull(vs, sig[:min(n, 4)])
	if err != nil {
		return err
	}
	if k < 4 || binary.LittleEndian.Uint32(sig[:]) != signature {
		d.anomaly(AnomalyBadEmbedded, "file %d: attached message is not a TNEF stream", idx)
		return d.data(vs, lv, vs.left, sig[:k], what)
	}
	inner := &level{depth: lv.depth + 1, parent: idx, cp: lv.cp, cur: -1}
	err = d.run(io.MultiReader(bytes.NewReader(sig[:]), vs), inner)
	if err == nil {
		err = skip(vs, vs.left, d.buf)
	}
	f := &d.res.Files[idx]
	f.MessageClass = inner.class
	if !lv.delivered {
		f.Size = n - vs.left
		lv.delivered = true
		if err != nil {
			f.Truncated = true
		}
	}
	return err
}
