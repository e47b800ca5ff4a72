"""Prints one JSON line per message named in the list file given as the first argument: what
Python's email package decodes from it with the default (modern) policy."""

import email
import email.policy
import hashlib
import json
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
    texts, hashes = [], []
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
    return {"file": path, "text": "\n".join(texts), "hashes": hashes}


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
