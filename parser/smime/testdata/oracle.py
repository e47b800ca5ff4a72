#!/usr/bin/env python3
"""Derive the expected values of corpus_test.go with tools other than the code under test.

MIME is parsed by Python's email package, CMS by OpenSSL (`openssl cms -cmsout -print`,
`openssl pkcs7 -print_certs`, `openssl x509`), OpenPGP by GnuPG (`gpg --list-packets`).
Writes corpus-oracle.tsv next to this script. Run from anywhere:

    python3 parser/smime/testdata/oracle.py ../shared/corpus
"""
import datetime, email, hashlib, os, re, subprocess, sys, tempfile

SMIME = {"application/pkcs7-signature", "application/x-pkcs7-signature",
         "application/pkcs7-mime", "application/x-pkcs7-mime"}
PGP = {"application/pgp-signature"}
CONTENT = {"1.2.840.113549.1.7.2": "signed-data", "1.2.840.113549.1.7.3": "enveloped-data",
           "1.2.840.113549.1.9.16.1.23": "authEnveloped-data"}


def run(*args, data=None):
    return subprocess.run(args, input=data, capture_output=True)


def when(s):  # "Mar 29 09:39:10 2005 GMT" -> RFC 3339
    return datetime.datetime.strptime(s.strip(), "%b %d %H:%M:%S %Y GMT").strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc2253_from_print(s):
    # `cms -print` writes names "C=US, O=X, CN=Y"; RFC 2253 order is reversed, joined by ",".
    # Good enough for the corpus names, none of which has ", " inside a value.
    return ",".join(reversed(s.split(", ")))


def cms_rows(blob, der, out):
    p = run("openssl", "cms", "-cmsout", "-print", "-inform", "DER", data=der)
    if p.returncode != 0:
        out.append(["blob", blob, "smime", "error"])
        return
    text = p.stdout.decode("utf-8", "replace")
    oid = re.search(r"contentType: .*\(([0-9.]+)\)", text).group(1)
    out.append(["blob", blob, "smime", CONTENT.get(oid, oid)])
    # issuerAndSerialNumber of each SignerInfo (d.) and each KeyTransRecipientInfo (ktri).
    signers = set()
    for m in re.finditer(r"(d\.issuerAndSerialNumber|rid: *\n\s*d\.issuerAndSerialNumber): *\n\s*issuer: (.*)\n\s*serialNumber: (\S+)", text):
        serial = int(m.group(3), 0)
        if "signerInfos" in text[:m.start()] and "recipientInfos" not in text:
            # -print writes emailAddress after a "/" where x509 -nameopt writes ", ".
            signers.add((m.group(2).replace("/", ", "), serial))
        else:
            out.append(["recipient", blob, rfc2253_from_print(m.group(2).replace("/", ", ")), format(serial, "x")])
    p = run("openssl", "pkcs7", "-inform", "DER", "-print_certs", data=der)
    pems = re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", p.stdout, re.S)
    for pem in pems:
        d = run("openssl", "x509", "-outform", "DER", data=pem).stdout
        f = run("openssl", "x509", "-noout", "-serial", "-startdate", "-enddate",
                "-subject", "-issuer", "-nameopt", "RFC2253", data=pem).stdout.decode()
        kv = dict(line.split("=", 1) for line in f.strip().split("\n"))
        iss = run("openssl", "x509", "-noout", "-issuer", "-nameopt", "sep_comma_plus_space",
                  data=pem).stdout.decode().strip().split("=", 1)[1]
        serial = int(kv["serial"], 16)
        out.append(["cert", blob, hashlib.sha256(d).hexdigest(), hashlib.sha1(d).hexdigest(),
                    format(serial, "x"), when(kv["notBefore"]), when(kv["notAfter"]),
                    "signer" if (iss, serial) in signers else "-", kv["subject"], kv["issuer"]])


def pgp_rows(blob, data, out):
    with tempfile.TemporaryDirectory() as home:
        p = run("gpg", "--homedir", home, "--list-packets", data=data)
    text = p.stdout.decode()
    out.append(["blob", blob, "pgp", "signature"])
    for m in re.finditer(r":signature packet: algo \d+, keyid (\w+)\n\s*version \d+, created (\d+)(.*?)(?=\n:|\Z)", text, re.S):
        fpr = re.search(r"issuer fpr v4 (\w+)", m.group(3))
        created = datetime.datetime.fromtimestamp(int(m.group(2)), datetime.timezone.utc)
        out.append(["pgpsigner", blob, m.group(1).lower(), fpr.group(1).lower() if fpr else "-",
                    created.strftime("%Y-%m-%dT%H:%M:%SZ")])


def main():
    corpus = sys.argv[1]
    mail = os.path.join(corpus, "mail")
    out = []
    for root, _, files in os.walk(mail):
        for name in sorted(files):
            path = os.path.join(root, name)
            raw = open(path, "rb").read()
            if not re.search(rb"pkcs7-signature|pgp-signature|pkcs7-mime", raw, re.I) or name == "MANIFEST.tsv":
                continue
            msg = email.message_from_bytes(raw)
            for part in msg.walk():
                ct = part.get_content_type()
                if ct not in SMIME | PGP:
                    continue
                data = part.get_payload(decode=True)
                blob = hashlib.sha256(data).hexdigest()
                out.append(["file", blob, os.path.relpath(path, corpus)])
                (cms_rows if ct in SMIME else pgp_rows)(blob, data, out)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "corpus-oracle.tsv"), "w") as f:
        f.write("# generated by oracle.py; see README.md\n")
        for row in out:
            f.write("\t".join(row) + "\n")


main()
