#!/usr/bin/env python3
"""Independent oracle for the textfile tests: lists the uuencoded and yEnc blocks of a file.

Usage: oracle.py FILE...   prints one line per block: kind, name, size, sha256, and for yEnc
whether the decoded bytes match the =yend size and crc32.

uuencode lines go through binascii.a2b_uu with the same fallback Python's (deprecated) uu
module uses for lines with trailing garbage; begin-base64 through binascii.a2b_base64; yEnc
through the few lines below, written from the spec at http://www.yenc.org/yenc-draft.1.3.txt
(no Go code was consulted).
"""
import binascii, hashlib, re, sys, zlib

BEGIN = re.compile(rb'^begin(-base64)?[ \t]+[0-7]{3,4}(?:[ \t]+(.*?))?[ \t]*$')

def blocks(data):
    lines = re.split(rb'\r\n|\r|\n', data)
    i = 0
    while i < len(lines):
        m = BEGIN.match(lines[i])
        if m:
            b64 = m.group(1) is not None
            name = (m.group(2) or b'').decode('latin-1')
            out, i, done = bytearray(), i + 1, False
            while i < len(lines):
                s = lines[i]
                if (b64 and s.strip() == b'====') or (not b64 and s.strip() == b'end'):
                    done = True
                    break
                if b64:
                    out += binascii.a2b_base64(s)
                elif s:
                    try:
                        out += binascii.a2b_uu(s)
                    except binascii.Error:
                        n = (((s[0] - 32) & 63) * 4 + 5) // 3   # uu.decode's workaround
                        out += binascii.a2b_uu(s[:n])
                i += 1
            yield ('uuencode-base64' if b64 else 'uuencode', name, bytes(out), done, '')
        elif lines[i].startswith(b'=ybegin '):
            hdr = lines[i]
            name = hdr[hdr.index(b' name=') + 6:].strip().decode('latin-1')
            out, i, note = bytearray(), i + 1, ''
            while i < len(lines) and not lines[i].startswith(b'=yend'):
                s = lines[i]
                if not s.startswith(b'=ypart'):
                    j = 0
                    while j < len(s):
                        c = s[j]
                        if c == ord('=') and j + 1 < len(s):
                            j += 1
                            c = (s[j] - 64) & 255
                        out.append((c - 42) & 255)
                        j += 1
                i += 1
            if i < len(lines):
                tr = dict(kv.split(b'=', 1) for kv in lines[i].split()[1:])
                note = 'size %s crc32 %s' % (
                    'ok' if int(tr[b'size']) == len(out) else 'MISMATCH',
                    'ok' if int(tr.get(b'pcrc32', tr.get(b'crc32')), 16) == zlib.crc32(out) else 'MISMATCH')
            yield ('yenc', name, bytes(out), i < len(lines), note)
        i += 1

for path in sys.argv[1:]:
    for kind, name, out, done, note in blocks(open(path, 'rb').read()):
        print('%s\t%s\t%r\t%d\t%s\tcomplete=%s\t%s' % (path, kind, name, len(out),
              hashlib.sha256(out).hexdigest(), done, note))
