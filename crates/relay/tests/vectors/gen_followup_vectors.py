# Independent derivation: argon2-cffi for Argon2id, a textbook bech32, and
# the stock age-keygen for the public recipient.
import json, subprocess
from argon2.low_level import hash_secret_raw, Type
CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
def polymod(values):
    gen = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3]
    chk = 1
    for v in values:
        b = chk >> 25
        chk = (chk & 0x1ffffff) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if ((b >> i) & 1) else 0
    return chk
def hrp_expand(h): return [ord(x) >> 5 for x in h] + [0] + [ord(x) & 31 for x in h]
def convertbits(data, frm, to):
    acc = bits = 0; ret = []; maxv = (1 << to) - 1
    for v in data:
        acc = (acc << frm) | v; bits += frm
        while bits >= to:
            bits -= to; ret.append((acc >> bits) & maxv)
    if bits: ret.append((acc << (to - bits)) & maxv)
    return ret
def bech32(hrp, data):
    d = convertbits(data, 8, 5)
    pm = polymod(hrp_expand(hrp) + d + [0]*6) ^ 1
    chk = [(pm >> 5*(5-i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[x] for x in d + chk)
vectors = []
for codename, salt, m, t, p in [
    ("abacus abdomen abdominal abide abiding ability ablaze able", bytes(range(32)), 65536, 3, 1),
    ("zoom yo-yo t-shirt felt-tip drop-down zone zoning zombie", bytes([0xa5]*32), 8192, 1, 1),
    ("correct hamster battery staple unsaid thinly veggie anyway", bytes(32), 8192, 2, 2),
]:
    out = hash_secret_raw(codename.encode(), salt, time_cost=t, memory_cost=m, parallelism=p, hash_len=64, type=Type.ID)
    lookup, secret = out[:32], out[32:]
    ident = bech32("age-secret-key-", secret).upper()
    rec = subprocess.run(["age-keygen", "-y"], input=ident.encode(), capture_output=True, check=True).stdout.decode().strip()
    vectors.append(dict(codename=codename, salt=salt.hex(), memory_kib=m, iterations=t, parallelism=p, lookup=lookup.hex(), recipient=rec))
print(json.dumps(vectors, indent=2))
