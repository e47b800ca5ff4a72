#!/usr/bin/env python3
"""Writes the synthetic TNEF fixtures in this directory from the layout in [MS-OXTNEF].

Independent of the Go decoder: run `python3 gen.py` here to rewrite them. README.md says
how their expected contents were checked with the Debian `tnef` tool.
"""
import struct

SIG = 0x223E9F78
LVL_MSG, LVL_ATT = 1, 2
attMessageClass = 0x00078008
attAttachData = 0x0006800F
attAttachTitle = 0x00018010
attAttachRendData = 0x00069002
attMsgProps = 0x00069003
attAttachment = 0x00069005
attTnefVersion = 0x00089006
attOemCodepage = 0x00069007
IID_IMESSAGE = bytes.fromhex("0703020000000000c000000000000046")
IID_ISTORAGE = bytes.fromhex("0b00000000000000c000000000000046")


def attr(level, aid, data, bad_sum=False):
    s = sum(data) & 0xFFFF
    if bad_sum:
        s ^= 0x5A5A
    return struct.pack("<BII", level, aid, len(data)) + data + struct.pack("<H", s)


def pad(b):
    return b + b"\0" * ((4 - len(b) % 4) % 4)


def var(values):
    out = struct.pack("<I", len(values))
    for v in values:
        out += struct.pack("<I", len(v)) + pad(v)
    return out


def prop(ptype, pid, value, name=None):
    out = struct.pack("<HH", ptype, pid)
    if name is not None:
        guid, kind, key = name
        out += guid + struct.pack("<I", kind)
        if kind == 0:
            out += struct.pack("<I", key)
        else:
            n = key.encode("utf-16-le") + b"\0\0"
            out += struct.pack("<I", len(n)) + pad(n)
    return out + value


def props(items):
    return struct.pack("<I", len(items)) + b"".join(items)


def u16z(s):
    return s.encode("utf-16-le") + b"\0\0"


def stream(attrs, key=0x1234):
    return struct.pack("<IH", SIG, key) + b"".join(attrs)


def common(cls, cp):
    return [
        attr(LVL_MSG, attTnefVersion, struct.pack("<I", 0x00010000)),
        attr(LVL_MSG, attOemCodepage, struct.pack("<II", cp, 0)),
        attr(LVL_MSG, attMessageClass, cls.encode() + b"\0"),
    ]


def pattern(n, seed):
    return bytes((i * 7 + seed) & 0xFF for i in range(n))


PSETID = bytes(range(16))

# inner message: one PDF-ish attachment
inner = stream(common("IPM.Note", 1252) + [
    attr(LVL_ATT, attAttachRendData, bytes(14)),
    attr(LVL_ATT, attAttachTitle, b"inner.pdf\0"),
    attr(LVL_ATT, attAttachData, b"%PDF-1.4\n" + pattern(300, 3)),
    attr(LVL_ATT, attAttachment, props([
        prop(0x0003, 0x3705, struct.pack("<I", 1)),
        prop(0x001E, 0x370E, var([b"application/pdf\0"])),
    ])),
])

multi = stream(common("IPM.Note", 1251) + [
    attr(LVL_MSG, attMsgProps, props([
        prop(0x001F, 0x0037, var([u16z("subject")])),
        prop(0x0102, 0x1009, var([pattern(5000, 1)])),  # an RTF-sized blob to skip
    ])),
    # 1: attAttachData, then names in attAttachment (Cyrillic title in code page 1251)
    attr(LVL_ATT, attAttachRendData, bytes(14)),
    attr(LVL_ATT, attAttachTitle, "отчёт.txt".encode("cp1251") + b"\0"),
    attr(LVL_ATT, attAttachData, b"hello world\n"),
    attr(LVL_ATT, attAttachment, props([
        prop(0x000B, 0x7FFE, struct.pack("<I", 0)),
        prop(0x001F, 0x3707, var([u16z("отчёт 2024.txt")])),
        prop(0x001E, 0x370E, var([b"text/plain\0"])),
        prop(0x001F, 0x3712, var([u16z("part1@example")])),
        prop(0x0003, 0x3705, struct.pack("<I", 1)),
    ])),
    # 2: empty attAttachData, bytes in PR_ATTACH_DATA_BIN, behind named and multi-valued
    # properties
    attr(LVL_ATT, attAttachRendData, bytes(14)),
    attr(LVL_ATT, attAttachTitle, b"DATA.BIN\0"),
    attr(LVL_ATT, attAttachData, b""),
    attr(LVL_ATT, attAttachment, props([
        prop(0x0003, 0x8001, struct.pack("<I", 7), name=(PSETID, 0, 0x8501)),
        prop(0x001F, 0x8002, var([u16z("x")]), name=(PSETID, 1, "Keywords!")),
        prop(0x1003, 0x6001, struct.pack("<I", 3) + struct.pack("<III", 1, 2, 3)),
        prop(0x101F, 0x6002, var([u16z("a"), u16z("bcd")])),
        prop(0x0048, 0x6003, bytes(16)),
        prop(0x0040, 0x3007, bytes(8)),
        prop(0x0102, 0x3701, var([pattern(1001, 9)])),
        prop(0x001E, 0x3707, var([b"data file.bin\0"])),
        prop(0x0003, 0x3705, struct.pack("<I", 1)),
    ])),
    # 3: an attached message
    attr(LVL_ATT, attAttachRendData, bytes(14)),
    attr(LVL_ATT, attAttachTitle, b"Fwd: inner\0"),
    attr(LVL_ATT, attAttachment, props([
        prop(0x0003, 0x3705, struct.pack("<I", 5)),
        prop(0x001F, 0x3001, var([u16z("inner subject")])),
        prop(0x000D, 0x3701, var([IID_IMESSAGE + inner])),
    ])),
    # 4: an OLE object
    attr(LVL_ATT, attAttachRendData, bytes(14)),
    attr(LVL_ATT, attAttachTitle, b"ole.doc\0"),
    attr(LVL_ATT, attAttachment, props([
        prop(0x0003, 0x3705, struct.pack("<I", 6)),
        prop(0x000D, 0x3701, var([IID_ISTORAGE + pattern(64, 5)])),
    ])),
])

badsum = stream(common("IPM.Note", 1252) + [
    attr(LVL_ATT, attAttachRendData, bytes(14)),
    attr(LVL_ATT, attAttachTitle, b"sum.txt\0"),
    attr(LVL_ATT, attAttachData, b"checksum is wrong\n", bad_sum=True),
])

for name, data in [("multi.tnef", multi), ("badsum.tnef", badsum), ("inner.tnef", inner)]:
    with open(name, "wb") as f:
        f.write(data)
