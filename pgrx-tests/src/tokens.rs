//! Tokens for the `fluent_authenticate` tests, signed with the test-only
//! keys in `tests/keys/` (see its README). `jwks()` is the public key set to
//! configure; `sign` makes a token that one of its keys verifies, and the
//! rest make tokens fluent must refuse.
//!
//! The keys, by kid: "rs-1" and "rs-2" (RSA; rs-2's JWK allows RS256
//! only), "es256-1" (P-256), "es384-1" (P-384), "ed-1" (Ed25519), "hs-1"
//! (a 512-bit HMAC secret, good for HS256, HS384 and HS512).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const JWKS: &str = include_str!("../../tests/keys/jwks.json");

/// The public key set (JWKS JSON) of every key below.
pub fn jwks() -> &'static str {
    JWKS
}

/// `jwks()` with only the keys of `kids`, e.g. after a key was retired.
pub fn jwks_with(kids: &[&str]) -> String {
    let mut set: Value = serde_json::from_str(JWKS).unwrap();
    let keys = set["keys"].as_array_mut().unwrap();
    keys.retain(|key| kids.contains(&key["kid"].as_str().unwrap()));
    assert_eq!(keys.len(), kids.len(), "unknown kid in {kids:?}");
    set.to_string()
}

/// Unix time now, in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims naming `user`, expiring in five minutes.
pub fn claims(user: &str) -> Value {
    json!({ "sub": user, "exp": now() + 300 })
}

/// A token of algorithm `alg` ("RS256", "ES384", ...) signed by the key
/// `kid` names, which the header names too. Without a kid, the header
/// names none and the key is the first of the algorithm's family: rs-1,
/// es256-1, es384-1, ed-1 or hs-1.
pub fn sign(alg: &str, kid: Option<&str>, claims: Value) -> String {
    let key = kid.unwrap_or(match alg {
        "RS256" | "RS384" | "RS512" => "rs-1",
        "ES256" => "es256-1",
        "ES384" => "es384-1",
        "EdDSA" => "ed-1",
        "HS256" | "HS384" | "HS512" => "hs-1",
        _ => panic!("no test key for {alg}"),
    });
    sign_as(alg, key, kid, claims)
}

/// A token signed by the key `key` whose header names `kid`, which may be
/// another key's (a forgery) or none.
pub fn sign_as(alg: &str, key: &str, kid: Option<&str>, claims: Value) -> String {
    let alg: Algorithm = alg.parse().unwrap_or_else(|_| panic!("no algorithm {alg}"));
    let header = Header {
        kid: kid.map(str::to_owned),
        ..Header::new(alg)
    };
    jsonwebtoken::encode(&header, &claims, &private_key(key))
        .unwrap_or_else(|e| panic!("sign {alg:?} with {key}: {e}"))
}

/// An unsigned token (`alg: none`, empty signature).
pub fn unsigned(claims: Value) -> String {
    format!(
        "{}.{}.",
        encode_part(&json!({ "alg": "none", "typ": "JWT" })),
        encode_part(&claims)
    )
}

/// The key-confusion forgery: HS256, naming kid "rs-1", with rs-1's public
/// key (the PEM text anyone can have) as the HMAC secret.
pub fn hs256_with_rsa_public_key(claims: Value) -> String {
    let header = Header {
        kid: Some("rs-1".into()),
        ..Header::new(Algorithm::HS256)
    };
    let secret = EncodingKey::from_secret(include_bytes!("../../tests/keys/rs-1.pub.pem"));
    jsonwebtoken::encode(&header, &claims, &secret).unwrap()
}

fn private_key(kid: &str) -> EncodingKey {
    match kid {
        "rs-1" => EncodingKey::from_rsa_pem(include_bytes!("../../tests/keys/rs-1.pem")),
        "rs-2" => EncodingKey::from_rsa_pem(include_bytes!("../../tests/keys/rs-2.pem")),
        "es256-1" => EncodingKey::from_ec_pem(include_bytes!("../../tests/keys/es256-1.pem")),
        "es384-1" => EncodingKey::from_ec_pem(include_bytes!("../../tests/keys/es384-1.pem")),
        "ed-1" => EncodingKey::from_ed_pem(include_bytes!("../../tests/keys/ed-1.pem")),
        "hs-1" => Ok(EncodingKey::from_secret(&hmac_secret())),
        _ => panic!("no test key {kid}"),
    }
    .unwrap()
}

/// hs-1's secret, whose only copy is its JWK.
fn hmac_secret() -> Vec<u8> {
    let set: Value = serde_json::from_str(JWKS).unwrap();
    let k = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == "hs-1")
        .and_then(|key| key["k"].as_str())
        .unwrap();
    URL_SAFE_NO_PAD.decode(k).unwrap()
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}
