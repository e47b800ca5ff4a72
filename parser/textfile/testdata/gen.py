#!/usr/bin/env python3
"""Writes the synthetic inputs under testdata/ and testdata/expected.tsv.

Run from the testdata directory: python3 gen.py. Each input's encoded files are made here
from known bytes (a seeded PRNG), so the expected name, size and sha256 in expected.tsv are
those of the original bytes: they owe nothing to the Go code. uuencode lines come from
binascii.b2a_uu (backtick=True like GNU uuencode, backtick=False like old encoders), the
begin-base64 block from GNU sharutils `uuencode -m`, yEnc from the encoder below, written
from http://www.yenc.org/yenc-draft.1.3.txt.
"""
import binascii, hashlib, random, subprocess, zlib

rnd = random.Random(20240601)
expected = []

def blob(n, zeros=False):
    b = bytearray(rnd.getrandbits(8) for _ in range(n))
    b[0:256] = bytes(range(256))[:n]          # every byte value, early on
    if zeros:
        b[300:420] = bytes(120)               # whole lines of zeros, and lines ending in zeros
    return bytes(b)

def expect(file, kind, name, data, complete=True, notes=''):
    expected.append('\t'.join([file, kind, name, str(len(data)),
                               hashlib.sha256(data).hexdigest(), str(complete).lower(), notes]))

def uu(name, data, backtick=True, strip=False, mode='644'):
    out = ['begin %s %s' % (mode, name)]
    for i in range(0, len(data), 45):
        l = binascii.b2a_uu(data[i:i + 45], backtick=backtick).decode().rstrip('\n')
        out.append(l.rstrip(' ') if strip else l)
    out.append('`' if backtick else ' ')
    out.append('end')
    return out

def yenc_escape(data, line=128):
    lines, cur = [], ''
    for i, b in enumerate(data):
        c = (b + 42) % 256
        at_start, at_end = cur == '', len(cur) >= line - 1 or i == len(data) - 1
        if c in (0, 10, 13, 61) or (c in (9, 32) and (at_start or at_end)) or (c == 46 and at_start):
            cur += '=' + chr((c + 64) % 256)
        else:
            cur += chr(c)
        if len(cur) >= line:
            lines.append(cur); cur = ''
    if cur:
        lines.append(cur)
    return lines

def write(file, lines, eol):
    with open(file, 'wb') as f:
        f.write(eol.join(lines).encode('latin-1') + eol.encode())

prose = ['Hello,', '', 'here is the file you asked for. Let me know if it does not open.', '']

# uuencode, GNU style (backtick), LF.
d1 = blob(1000)
write('uu-backtick-lf.txt', prose + uu('data.bin', d1) + ['', 'Regards,', 'Bob'], '\n')
expect('uu-backtick-lf.txt', 'uuencode', 'data.bin', d1)

# uuencode, space padding, CRLF, four-digit mode, name with a space.
d2 = blob(700)
write('uu-space-crlf.txt', prose + uu('my report.doc', d2, backtick=False, mode='0600') + ['--', 'sig'], '\r\n')
expect('uu-space-crlf.txt', 'uuencode', 'my report.doc', d2)

# uuencode, space padding whose trailing spaces a mailer stripped, CR-only line ends.
d3 = blob(900, zeros=True)
write('uu-stripped-cr.txt', prose + uu('zeros.bin', d3, backtick=False, strip=True), '\r')
expect('uu-stripped-cr.txt', 'uuencode', 'zeros.bin', d3, notes='uuencode: short line')

# begin-base64 from GNU uuencode -m.
d4 = blob(800)
open('/tmp/d4.bin', 'wb').write(d4)
b64 = subprocess.run(['uuencode', '-m', '/tmp/d4.bin', 'photo.jpg'], capture_output=True, check=True).stdout.decode()
write('uu-base64.txt', prose + b64.rstrip('\n').split('\n') + ['thanks'], '\n')
expect('uu-base64.txt', 'uuencode-base64', 'photo.jpg', d4)

# yEnc, single part, CRLF, every byte value (so every critical character is escaped).
d5 = blob(3000)
y = ['=ybegin line=128 size=%d name=yenc test.bin' % len(d5)] + yenc_escape(d5) + \
    ['=yend size=%d crc32=%08x' % (len(d5), zlib.crc32(d5))]
write('yenc-single.txt', prose + y + ['', 'bye'], '\r\n')
expect('yenc-single.txt', 'yenc', 'yenc test.bin', d5)

# yEnc, part 2 of 3 of a 5000-byte file: bytes 2001..3500.
whole = blob(5000)
d6 = whole[2000:3500]
y = ['=ybegin part=2 total=3 line=128 size=5000 name=archive.rar',
     '=ypart begin=2001 end=3500'] + yenc_escape(d6) + \
    ['=yend size=1500 part=2 pcrc32=%08x crc32=%08x' % (zlib.crc32(d6), zlib.crc32(whole))]
write('yenc-multipart.txt', y, '\n')
expect('yenc-multipart.txt', 'yenc', 'archive.rar', d6)

# yEnc whose trailer disagrees: size off by one and a wrong crc32.
d7 = blob(400)
y = ['=ybegin line=128 size=%d name=bad.bin' % len(d7)] + yenc_escape(d7) + \
    ['=yend size=%d crc32=%08x' % (len(d7) + 1, zlib.crc32(d7) ^ 1)]
write('yenc-mismatch.txt', y, '\n')
expect('yenc-mismatch.txt', 'yenc', 'bad.bin', d7, notes='yenc: size mismatch|yenc: crc32 mismatch')

# Several blocks in one text, and one cut short by the end of the text.
d8, d9, d10 = blob(100), blob(200), blob(90)
y = ['=ybegin line=64 size=%d name=b.txt' % len(d9)] + yenc_escape(d9, 64) + \
    ['=yend size=%d crc32=%08x' % (len(d9), zlib.crc32(d9))]
cut = uu('c.bin', d10)[:-2]        # no zero-length line, no end line
write('several.txt', prose + uu('a.bin', d8) + ['between'] + y + ['and then'] + cut, '\n')
expect('several.txt', 'uuencode', 'a.bin', d8)
expect('several.txt', 'yenc', 'b.txt', d9)
expect('several.txt', 'uuencode', 'c.bin', d10, complete=False, notes='uuencode: text ended inside the block')

with open('expected.tsv', 'w') as f:
    f.write('# file\tkind\tname\tsize\tsha256\tcomplete\tanomalies (| separated)\n')
    f.write('\n'.join(expected) + '\n')
