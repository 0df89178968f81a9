#!/usr/bin/env python3
"""Encrypts a form instance as ODK Collect does for an encrypted form, with
Python's `cryptography` (an implementation independent of the reviewer's
Rust one), following ODK's "Encrypted forms" specification
(docs.getodk.org/encrypted-forms, and Collect's EncryptionUtils):

- a fresh 256-bit AES key, encrypted to the form's RSA public key with
  RSA-OAEP, SHA-256 and MGF1-SHA-256 (`base64EncryptedKey`);
- an IV seed: MD5 of the instanceID (UTF-8) followed by the AES key; before
  each file, byte (i mod 16) of the seed is incremented (i counting files
  from 0), and the seed is that file's IV;
- each media file, then the instance, encrypted with AES-256 in CFB mode
  (128-bit segments) after PKCS#7 padding, named NAME.enc;
- an element signature: the MD5 of "formId\\nversion\\nbase64EncryptedKey\\n
  instanceID\\n" + "NAME::md5hex(plaintext)\\n" per media file +
  "submission.xml::md5hex(plaintext)\\n", encrypted like the key;
- the manifest, `submission.xml`, naming all of it.

Usage: encrypt.py PUBLIC_KEY_B64 FORM_ID VERSION INSTANCE_ID INSTANCE_XML OUT_DIR [MEDIA...]
Writes OUT_DIR/submission.xml, OUT_DIR/submission.xml.enc and OUT_DIR/NAME.enc.
"""
import base64
import hashlib
import os
import sys

from cryptography.hazmat.primitives import hashes, padding as sym_padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def main():
    pub_b64, form_id, version, instance_id, xml_path, out = sys.argv[1:7]
    media = sys.argv[7:]
    public = serialization.load_der_public_key(base64.b64decode(pub_b64))
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    key = os.urandom(32)
    enc_key = base64.b64encode(public.encrypt(key, oaep)).decode()
    seed = bytearray(hashlib.md5(instance_id.encode() + key).digest())
    counter = [0]

    def encrypt(data):
        seed[counter[0] % 16] = (seed[counter[0] % 16] + 1) % 256
        counter[0] += 1
        padder = sym_padding.PKCS7(128).padder()
        padded = padder.update(data) + padder.finalize()
        enc = Cipher(algorithms.AES(key), modes.CFB(bytes(seed))).encryptor()
        return enc.update(padded) + enc.finalize()

    os.makedirs(out, exist_ok=True)
    signature = f"{form_id}\n{version}\n{enc_key}\n{instance_id}\n"
    files = []
    for path in media:
        name = os.path.basename(path)
        data = open(path, "rb").read()
        open(os.path.join(out, name + ".enc"), "wb").write(encrypt(data))
        signature += f"{name}::{hashlib.md5(data).hexdigest()}\n"
        files.append(name + ".enc")
    xml = open(xml_path, "rb").read()
    open(os.path.join(out, "submission.xml.enc"), "wb").write(encrypt(xml))
    signature += f"submission.xml::{hashlib.md5(xml).hexdigest()}\n"
    enc_sig = base64.b64encode(public.encrypt(hashlib.md5(signature.encode()).digest(), oaep)).decode()
    media_xml = "".join(f"<file>{f}</file>" for f in files)
    manifest = (
        f'<data xmlns="http://www.opendatakit.org/xforms/encrypted" id="{form_id}" '
        f'version="{version}" encrypted="yes">'
        f"<base64EncryptedKey>{enc_key}</base64EncryptedKey>"
        f'<meta xmlns="http://openrosa.org/xforms"><instanceID>{instance_id}</instanceID></meta>'
        f"<media>{media_xml}</media>"
        "<encryptedXmlFile>submission.xml.enc</encryptedXmlFile>"
        f"<base64EncryptedElementSignature>{enc_sig}</base64EncryptedElementSignature>"
        "</data>"
    )
    open(os.path.join(out, "submission.xml"), "w").write(manifest)


if __name__ == "__main__":
    main()
