"""Prints one JSON line per message named in the list file given as the first argument: what
Python's email package decodes from it with the default (modern) policy."""

import email
import email.policy
import hashlib
import json
import re
import sys

BODY_TYPES = ("text/plain", "text/html")


def text_of(part):
    try:
        return part.get_content()
    except Exception:
        # An unknown charset or a broken encoding: decode what is there rather than nothing.
        data = part.get_payload(decode=True) or b""
        try:
            return data.decode(part.get_content_charset() or "utf-8", errors="replace")
        except LookupError:
            return data.decode("utf-8", errors="replace")


def findings(path):
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    texts, hashes, parts = [], [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype in BODY_TYPES:
            texts.append(text_of(part))
        if ctype not in BODY_TYPES or part.get_filename():
            data = part.get_payload(decode=True)
            if data is not None:
                hashes.append(hashlib.sha256(data).hexdigest())
                parts.append(describe(part, ctype, data))
    return {"file": path, "text": "\n".join(texts), "hashes": hashes, "parts": parts}


def describe(part, ctype, data):
    """What the corpus comparison needs to tell a miss from a difference of reading."""
    cte = (part.get("Content-Transfer-Encoding") or "").strip().lower()
    encoded = part.get_payload(decode=False)
    if isinstance(encoded, str):
        encoded = encoded.encode("latin-1", "replace")
    # Python hands back the encoded text when it cannot decode it (a base64 error, an
    # unknown or missing transfer encoding over base64).
    squeezed = re.sub(rb"\s", b"", data)
    undecoded = squeezed == re.sub(rb"\s", b"", encoded) and (
        cte not in ("", "7bit", "8bit", "binary") or re.fullmatch(rb"[A-Za-z0-9+/=]{16,}", squeezed) is not None)
    crlf = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    defects = [type(d).__name__ for d in part.defects]
    return {
        "type": ctype,
        "filename": part.get_filename() or "",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "crlf_sha256": hashlib.sha256(crlf).hexdigest(),
        "undecoded": undecoded,
        "defects": defects,
    }


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
    for path in paths:
        try:
            out = findings(path)
        except Exception as e:
            out = {"file": path, "error": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
