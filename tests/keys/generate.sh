#!/usr/bin/env bash
# Regenerates the test-only keys in this folder and jwks.json, the public
# key set that verifies tokens signed with them. Needs openssl and python3.
# Run from anywhere; it overwrites every key, so tests keep passing only if
# nothing hard-codes a signature or a key's bytes.
set -euo pipefail
cd "$(dirname "$0")"

rsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.pem" 2>/dev/null; }
ec() { openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -pkeyopt ec_param_enc:named_curve -out "$1.pem"; }

rsa rs-1
rsa rs-2
ec es256-1 P-256
ec es384-1 P-384
openssl genpkey -algorithm ED25519 -out ed-1.pem
# What an attacker holds: the published public key, as PEM text.
openssl pkey -in rs-1.pem -pubout -out rs-1.pub.pem

# The public halves as JWKs (the raw values sit at the end of the DER
# SubjectPublicKeyInfo), plus one random 512-bit HMAC secret, so hs-1
# serves HS256, HS384 and HS512.
python3 - <<'PY'
import base64, json, os, subprocess

def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

def spki(name):
    return subprocess.run(["openssl", "pkey", "-in", f"{name}.pem", "-pubout", "-outform", "DER"],
                          check=True, capture_output=True).stdout

def rsa(kid, **extra):
    text = subprocess.run(["openssl", "rsa", "-in", f"{kid}.pem", "-noout", "-modulus"],
                          check=True, capture_output=True, text=True).stdout
    n = bytes.fromhex(text.strip().split("=", 1)[1])
    return {"kty": "RSA", "kid": kid, "use": "sig", **extra, "n": b64(n), "e": "AQAB"}

def ec(kid, crv, size, alg):
    point = spki(kid)[-(2 * size + 1):]
    assert point[0] == 4, "uncompressed point expected"
    return {"kty": "EC", "kid": kid, "use": "sig", "alg": alg, "crv": crv,
            "x": b64(point[1:1 + size]), "y": b64(point[1 + size:])}

keys = [
    rsa("rs-1"),
    # rs-2 names its algorithm: tokens for it must be RS256.
    rsa("rs-2", alg="RS256"),
    ec("es256-1", "P-256", 32, "ES256"),
    ec("es384-1", "P-384", 48, "ES384"),
    {"kty": "OKP", "kid": "ed-1", "use": "sig", "alg": "EdDSA", "crv": "Ed25519",
     "x": b64(spki("ed-1")[-32:])},
    {"kty": "oct", "kid": "hs-1", "k": b64(os.urandom(64))},
]
with open("jwks.json", "w") as f:
    json.dump({"keys": keys}, f, indent=2)
    f.write("\n")
PY
