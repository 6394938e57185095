//! Verifying JSON Web Tokens (RFC 7519) for `fluent_authenticate`. Pure
//! logic: no database, unit-tested with `cargo test`. The cryptography is
//! the `jsonwebtoken` crate's; the choice of key and every claim check are
//! here, so the rules below are fluent's own and each failure says which
//! rule it broke.
//!
//! A token is accepted when, in this order:
//! 1. The configured key set is usable: a JWKS (`{"keys": [...]}`), parsed
//!    once per backend and kept while its text is unchanged. An empty set
//!    is `NoKeys`, one that does not parse or holds a malformed key is
//!    `BadKeySet`: the server is misconfigured, whatever the token. Keys
//!    that cannot verify signatures (`use` other than `sig`, `key_ops`
//!    without `verify`, key types, curves or `alg`s fluent does not
//!    support) are skipped, so a provider's published set works as it is.
//! 2. The token is a signed JWT (three base64url parts) whose header names
//!    one of HS256/384/512, RS256/384/512, ES256, ES384 or EdDSA. `alg:
//!    none` is refused, and so is a `crit` header, since fluent implements
//!    no extension. Keys carried or pointed to by the header (`jwk`, `jku`,
//!    `x5c`, `x5u`) are ignored: keys come from the configuration only.
//! 3. One key is chosen: with a `kid`, the key of that id; without one,
//!    the only key in the set that can verify the token's algorithm. A key
//!    verifies only its own family: `oct` HS*, `RSA` RS*, `EC` P-256 ES256
//!    and P-384 ES384, `OKP` Ed25519 EdDSA, and only the JWK's `alg` when it
//!    names one. That defeats key confusion: a token that says HS256 is
//!    never checked with an RSA public key's bytes as the HMAC secret.
//!    Following RFC 7518, an HMAC secret must be at least as long as the
//!    hash (HS256 needs 256 bits) and an RSA modulus at least 2048 bits.
//! 4. The signature verifies with that key.
//! 5. Then the claims, whose values mean nothing before: `exp` is required
//!    and `nbf` optional, both against the caller's `now` with its leeway
//!    (expired once `now >= exp + leeway`, valid from `now + leeway >=
//!    nbf`); `iss` must equal the configured issuer, if any; `aud` (a
//!    string or an array) must hold one of the configured audiences, if
//!    any. The user claim, and the workspace claim when one is configured,
//!    must be a non-empty string or an integer, taken as its decimal text
//!    (some providers number their users); a fractional number is refused,
//!    as `1.0` and `1` would name one user two ways, and so is a NUL, which
//!    PostgreSQL text cannot hold.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use serde_json::{Map, Value};

/// What a token must satisfy, from fluent's settings and the clock.
#[derive(Clone, Copy)]
pub struct Policy<'a> {
    /// The key set, as JWKS JSON.
    pub keys: &'a str,
    /// The audiences fluent answers to; empty: `aud` is not checked.
    pub audiences: &'a [&'a str],
    /// The one accepted issuer; `None`: `iss` is not checked.
    pub issuer: Option<&'a str>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway: u64,
    /// The claim naming the user, e.g. "sub".
    pub user_claim: &'a str,
    /// The claim naming the workspace; when set, it is required.
    pub workspace_claim: Option<&'a str>,
    /// The current time, in Unix seconds.
    pub now: u64,
}

/// An accepted token: who it names, and which key vouched for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub user: String,
    pub workspace: Option<String>,
    /// The `kid` of the key that verified the signature (set even when the
    /// token named none, if that key has one).
    pub kid: Option<String>,
    /// The token's algorithm, e.g. "RS256".
    pub alg: &'static str,
}

/// Why a token was refused. The strings come from the configuration or the
/// token (clipped), never from key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// The key set is empty or unset.
    NoKeys,
    /// The key set is not a usable JWKS; the text says why.
    BadKeySet(String),
    /// The token is not a well-formed signed JWT; the text says why.
    Malformed(String),
    /// The token is unsigned (`alg: none`).
    AlgorithmNone,
    /// The token's algorithm, which fluent does not accept.
    UnsupportedAlgorithm(String),
    /// The token's `kid`, which no configured key has.
    UnknownKey(String),
    /// The token names no key and several could verify it.
    AmbiguousKey,
    /// The named key (or, without a `kid`, every key) cannot verify `alg`.
    AlgorithmMismatch {
        alg: &'static str,
        kid: Option<String>,
    },
    BadSignature,
    Expired,
    NotYetValid,
    /// A required claim is absent.
    MissingClaim(String),
    /// A claim has a value of the wrong kind.
    BadClaim(String),
    WrongAudience,
    WrongIssuer,
}

impl TokenError {
    /// One lower-case phrase, for a PostgreSQL error message.
    pub fn reason(&self) -> String {
        match self {
            Self::NoKeys => "no token keys are configured".into(),
            Self::BadKeySet(why) => format!("the configured token key set is invalid: {why}"),
            Self::Malformed(why) => format!("the token is malformed: {why}"),
            Self::AlgorithmNone => "unsigned tokens (alg \"none\") are not accepted".into(),
            Self::UnsupportedAlgorithm(alg) => {
                format!("the token's algorithm {alg:?} is not accepted")
            }
            Self::UnknownKey(kid) => format!("no configured key has the token's kid {kid:?}"),
            Self::AmbiguousKey => {
                "the token names no key (kid) and more than one configured key could verify it"
                    .into()
            }
            Self::AlgorithmMismatch {
                alg,
                kid: Some(kid),
            } => {
                format!("key {kid:?} cannot verify {alg} tokens")
            }
            Self::AlgorithmMismatch { alg, kid: None } => {
                format!("no configured key can verify {alg} tokens")
            }
            Self::BadSignature => "the token's signature is invalid".into(),
            Self::Expired => "the token expired".into(),
            Self::NotYetValid => "the token is not valid yet".into(),
            Self::MissingClaim(claim) => format!("the token has no {claim:?} claim"),
            Self::BadClaim(claim) => format!("the token's {claim:?} claim has an invalid value"),
            Self::WrongAudience => "the token is meant for another audience".into(),
            Self::WrongIssuer => "the token comes from another issuer".into(),
        }
    }

    /// True when the server is misconfigured, rather than the token bad.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::NoKeys | Self::BadKeySet(_))
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

impl std::error::Error for TokenError {}

/// Verifies `token` under `policy`: see the module comment for the rules.
pub fn verify(token: &str, policy: &Policy) -> Result<Verified, TokenError> {
    let set = key_set(policy.keys);
    let keys = set.as_ref().as_ref().map_err(Clone::clone)?;
    let (message, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| malformed("a token is three base64url parts joined by dots"))?;
    let (header, payload) = message
        .split_once('.')
        .filter(|(_, payload)| !payload.contains('.'))
        .ok_or_else(|| malformed("a token is three base64url parts joined by dots"))?;
    let header = Header::parse(header)?;
    let key = choose_key(keys, &header)?;
    check_signature(key, header.alg, message, signature)?;
    // Only now do the claims mean anything. They are read here rather than
    // by the crate, whose own checks are skipped: the caller's clock and
    // precise errors are wanted.
    let claims: Map<String, Value> = base64url_decode(payload)
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(|| malformed("its claims are not a base64url-encoded JSON object"))?;
    check_times(&claims, policy)?;
    if let Some(issuer) = policy.issuer {
        check_issuer(&claims, issuer)?;
    }
    if !policy.audiences.is_empty() {
        check_audience(&claims, policy.audiences)?;
    }
    Ok(Verified {
        user: identity(&claims, policy.user_claim)?,
        workspace: policy
            .workspace_claim
            .map(|claim| identity(&claims, claim))
            .transpose()?,
        kid: key.kid.clone(),
        alg: header.name,
    })
}

fn malformed(why: &str) -> TokenError {
    TokenError::Malformed(why.into())
}

/// The algorithms fluent accepts, by their JOSE names.
const ALGORITHMS: [(&str, Algorithm); 9] = [
    ("HS256", Algorithm::HS256),
    ("HS384", Algorithm::HS384),
    ("HS512", Algorithm::HS512),
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// What a key is, which decides the algorithms it may verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Hmac { bytes: usize },
    Rsa,
    P256,
    P384,
    Ed25519,
}

struct Key {
    kid: Option<String>,
    kind: Kind,
    /// The JWK's `alg`: when set, the only algorithm the key verifies.
    alg: Option<KeyAlgorithm>,
    decoding: DecodingKey,
}

impl Key {
    fn verifies(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        let family = match (self.kind, alg) {
            // RFC 7518 3.2: the secret is at least as long as the hash.
            (Kind::Hmac { bytes }, HS256) => bytes >= 32,
            (Kind::Hmac { bytes }, HS384) => bytes >= 48,
            (Kind::Hmac { bytes }, HS512) => bytes >= 64,
            (Kind::Rsa, RS256 | RS384 | RS512)
            | (Kind::P256, ES256)
            | (Kind::P384, ES384)
            | (Kind::Ed25519, EdDSA) => true,
            _ => false,
        };
        family && self.alg.is_none_or(|own| own == KeyAlgorithm::from(alg))
    }
}

type KeySet = Rc<Result<Vec<Key>, TokenError>>;

thread_local! {
    /// The last key set parsed on this thread (a backend has one), with the
    /// text it came from: parsing and checking keys on every call is waste,
    /// and a changed setting replaces it. Errors are kept too, so a broken
    /// setting is not re-parsed for every token either.
    static KEY_SET: RefCell<Option<(String, KeySet)>> = const { RefCell::new(None) };
}

fn key_set(text: &str) -> KeySet {
    KEY_SET.with_borrow_mut(|cached| match cached {
        Some((cached_text, set)) if cached_text == text => set.clone(),
        _ => {
            let set = Rc::new(parse_key_set(text));
            *cached = Some((text.to_owned(), set.clone()));
            set
        }
    })
}

fn parse_key_set(text: &str) -> Result<Vec<Key>, TokenError> {
    if text.trim().is_empty() {
        return Err(TokenError::NoKeys);
    }
    // Parsed as plain JSON first: serde's messages for typed values quote
    // the offending value, which here could be a secret.
    let set: Value = serde_json::from_str(text).map_err(|e| {
        TokenError::BadKeySet(format!(
            "it is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Some(jwks) = set.get("keys").and_then(Value::as_array) else {
        return Err(TokenError::BadKeySet(
            "it is not a JSON object with a \"keys\" array".into(),
        ));
    };
    if jwks.is_empty() {
        return Err(TokenError::NoKeys);
    }
    let mut keys = Vec::with_capacity(jwks.len());
    for (i, jwk) in jwks.iter().enumerate() {
        keys.extend(parse_key(i, jwk)?);
    }
    if keys.is_empty() {
        return Err(TokenError::BadKeySet(
            "none of its keys can verify token signatures".into(),
        ));
    }
    Ok(keys)
}

/// The key of one JWK; `None` for a well-formed key fluent cannot use.
fn parse_key(index: usize, value: &Value) -> Result<Option<Key>, TokenError> {
    let name = match value.get("kid").and_then(Value::as_str) {
        Some(kid) => format!("{kid:?}"),
        None => format!("#{}", index + 1),
    };
    let bad = |why: &str| Err(TokenError::BadKeySet(format!("key {name} {why}")));
    let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else {
        return bad("is not a valid JWK");
    };

    let common = &jwk.common;
    let signs = common
        .public_key_use
        .as_ref()
        .is_none_or(|u| *u == PublicKeyUse::Signature)
        && common
            .key_operations
            .as_ref()
            .is_none_or(|ops| ops.contains(&KeyOperations::Verify))
        && common.key_algorithm.is_none_or(|own| {
            ALGORITHMS
                .iter()
                .any(|&(_, alg)| own == KeyAlgorithm::from(alg))
        });
    if !signs {
        return Ok(None);
    }

    // The curve's kind and the expected length of its public value.
    let curve = match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) | AlgorithmParameters::RSA(_) => None,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some((Kind::P256, Algorithm::ES256, 65)),
            EllipticCurve::P384 => Some((Kind::P384, Algorithm::ES384, 97)),
            EllipticCurve::Ed25519 => return bad("has a curve that is not for kty \"EC\""),
            _ => return Ok(None),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => Some((Kind::Ed25519, Algorithm::EdDSA, 32)),
            EllipticCurve::P256 | EllipticCurve::P384 | EllipticCurve::P521 => {
                return bad("has a curve that is not for kty \"OKP\"");
            }
            _ => return Ok(None),
        },
        // What the crate does not model: key types and curves it does not
        // know, which are skipped, and keys of the types it knows that lack
        // a member or have one of the wrong type, which are errors.
        AlgorithmParameters::Other(other) => {
            let known_curve = other
                .fields
                .get("crv")
                .and_then(Value::as_str)
                .is_some_and(|crv| ["P-256", "P-384", "P-521", "Ed25519"].contains(&crv));
            return match other.fields.get("kty").and_then(Value::as_str) {
                None => bad("has no \"kty\""),
                Some("EC" | "OKP") if !known_curve => Ok(None),
                Some("RSA" | "oct" | "EC" | "OKP") => bad("lacks a member its \"kty\" needs"),
                Some(_) => Ok(None),
            };
        }
        _ => return Ok(None),
    };

    let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
        return bad("has a value that is not base64url");
    };
    let kind = match (decoding.kind(), curve) {
        (DecodingKeyKind::SecretOrDer(secret), None) => {
            if secret.len() < 32 {
                return bad("is an HMAC secret shorter than 256 bits");
            }
            Kind::Hmac {
                bytes: secret.len(),
            }
        }
        // The verifier refuses moduli over 4096 bits and exponents outside
        // 2..2^33 at every signature; refusing them here makes such a key a
        // configuration error rather than every token's fault.
        (DecodingKeyKind::RsaModulusExponent { n, e }, None) => {
            if !(2048..=4096).contains(&bits(n)) {
                return bad("is an RSA key whose modulus is not 2048 to 4096 bits");
            }
            if !(2..=33).contains(&bits(e)) {
                return bad("is an RSA key with an unusable exponent");
            }
            Kind::Rsa
        }
        (DecodingKeyKind::SecretOrDer(point), Some((kind, alg, len))) => {
            // The crate takes the public value as given (its Ed25519
            // verifier would even panic on a short one). A trial
            // verification builds the verifier, which refuses a point that
            // is not on the curve, before any token relies on the key.
            if point.len() != len || jsonwebtoken::crypto::verify("", b"", &decoding, alg).is_err()
            {
                return bad("is not a valid public key for its curve");
            }
            kind
        }
        _ => return bad("is not a valid JWK"),
    };
    Ok(Some(Key {
        kid: jwk.common.key_id.clone(),
        kind,
        alg: jwk.common.key_algorithm,
        decoding,
    }))
}

/// The bit length of a big-endian unsigned integer.
fn bits(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i) * 8 - be[i].leading_zeros() as usize,
        None => 0,
    }
}

/// The parts of a token's header that pick the key, read before any
/// signature is checked (so trusted for nothing else).
struct Header {
    name: &'static str,
    alg: Algorithm,
    kid: Option<String>,
}

impl Header {
    fn parse(encoded: &str) -> Result<Self, TokenError> {
        let header: Map<String, Value> = base64url_decode(encoded)
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| malformed("its header is not a base64url-encoded JSON object"))?;
        let Some(Value::String(alg)) = header.get("alg") else {
            return Err(malformed("its header has no \"alg\""));
        };
        // Any spelling: some libraries once honoured "None" and "NONE".
        if alg.eq_ignore_ascii_case("none") {
            return Err(TokenError::AlgorithmNone);
        }
        let Some(&(name, alg)) = ALGORITHMS.iter().find(|(name, _)| name == alg) else {
            return Err(TokenError::UnsupportedAlgorithm(clip(alg)));
        };
        if header.contains_key("crit") {
            return Err(malformed(
                "its header lists critical extensions (\"crit\"), which fluent does not implement",
            ));
        }
        let kid = match header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(malformed("its \"kid\" is not a string")),
        };
        Ok(Header { name, alg, kid })
    }
}

fn choose_key<'k>(keys: &'k [Key], header: &Header) -> Result<&'k Key, TokenError> {
    let mismatch = |kid: Option<&String>| TokenError::AlgorithmMismatch {
        alg: header.name,
        kid: kid.cloned(),
    };
    match &header.kid {
        Some(kid) => {
            // A kid normally names one key; RFC 7517 allows one kid on keys
            // of different types, and then the token's algorithm decides.
            let mut named = keys
                .iter()
                .filter(|key| key.kid.as_ref() == Some(kid))
                .peekable();
            if named.peek().is_none() {
                return Err(TokenError::UnknownKey(clip(kid)));
            }
            named
                .find(|key| key.verifies(header.alg))
                .ok_or_else(|| mismatch(Some(kid)))
        }
        None => {
            let mut usable = keys.iter().filter(|key| key.verifies(header.alg));
            match (usable.next(), usable.next()) {
                (Some(key), None) => Ok(key),
                (Some(_), Some(_)) => Err(TokenError::AmbiguousKey),
                (None, _) => Err(mismatch(None)),
            }
        }
    }
}

/// The signature over `message` (the encoded header and claims).
fn check_signature(
    key: &Key,
    alg: Algorithm,
    message: &str,
    signature: &str,
) -> Result<(), TokenError> {
    match jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key.decoding, alg) {
        Ok(true) => Ok(()),
        Ok(false) => Err(TokenError::BadSignature),
        Err(e) if matches!(e.kind(), ErrorKind::Base64(_)) => {
            Err(malformed("its signature is not base64url"))
        }
        // The crate refuses a key of another family too (no HMAC with an
        // RSA key), and keys are tried when the set is parsed, so this is
        // not expected; it would be the configuration's fault.
        Err(_) => Err(TokenError::BadKeySet(
            "a key cannot be used for verification".into(),
        )),
    }
}

fn check_times(claims: &Map<String, Value>, policy: &Policy) -> Result<(), TokenError> {
    // NumericDate may be fractional (RFC 7519 2); f64 holds whole Unix
    // seconds exactly for the next 285 million years.
    let now = policy.now as f64;
    let leeway = policy.leeway as f64;
    let Some(exp) = numeric_date(claims, "exp")? else {
        return Err(TokenError::MissingClaim("exp".into()));
    };
    if now >= exp + leeway {
        return Err(TokenError::Expired);
    }
    match numeric_date(claims, "nbf")? {
        Some(nbf) if now + leeway < nbf => Err(TokenError::NotYetValid),
        _ => Ok(()),
    }
}

fn numeric_date(claims: &Map<String, Value>, claim: &str) -> Result<Option<f64>, TokenError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(TokenError::BadClaim(claim.into())),
    }
}

fn check_issuer(claims: &Map<String, Value>, issuer: &str) -> Result<(), TokenError> {
    match claims.get("iss") {
        None => Err(TokenError::MissingClaim("iss".into())),
        Some(Value::String(iss)) if iss == issuer => Ok(()),
        Some(Value::String(_)) => Err(TokenError::WrongIssuer),
        Some(_) => Err(TokenError::BadClaim("iss".into())),
    }
}

fn check_audience(claims: &Map<String, Value>, audiences: &[&str]) -> Result<(), TokenError> {
    let ours = |aud: &str| audiences.contains(&aud);
    let matched = match claims.get("aud") {
        None => return Err(TokenError::MissingClaim("aud".into())),
        Some(Value::String(aud)) => ours(aud),
        Some(Value::Array(auds)) => {
            let mut matched = false;
            for aud in auds {
                let Value::String(aud) = aud else {
                    return Err(TokenError::BadClaim("aud".into()));
                };
                matched |= ours(aud);
            }
            matched
        }
        Some(_) => return Err(TokenError::BadClaim("aud".into())),
    };
    if matched {
        Ok(())
    } else {
        Err(TokenError::WrongAudience)
    }
}

/// A user or workspace id: a non-empty string without NUL, or an integer
/// as its decimal text.
fn identity(claims: &Map<String, Value>, claim: &str) -> Result<String, TokenError> {
    let id = match claims.get(claim) {
        None | Some(Value::Null) => return Err(TokenError::MissingClaim(claim.into())),
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(_) => return Err(TokenError::BadClaim(claim.into())),
    };
    if id.is_empty() || id.contains('\0') {
        return Err(TokenError::BadClaim(claim.into()));
    }
    Ok(id)
}

/// Text from a token, shortened for an error message.
fn clip(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// Unpadded base64url (RFC 7515 2), for the header and claims: the crate
/// does not export its decoder. Leniency here cannot help a forger, as the
/// signature covers the encoded text.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6 | u32::from(sextet)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // One leftover character (6 bits) cannot end a valid encoding.
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey};
    use serde_json::json;

    const JWKS: &str = include_str!("../tests/keys/jwks.json");
    const RS_1: &str = include_str!("../tests/keys/rs-1.pem");
    const RS_1_PUBLIC: &str = include_str!("../tests/keys/rs-1.pub.pem");
    const RS_2: &str = include_str!("../tests/keys/rs-2.pem");
    const ES256_1: &str = include_str!("../tests/keys/es256-1.pem");
    const ES384_1: &str = include_str!("../tests/keys/es384-1.pem");
    const ED_1: &str = include_str!("../tests/keys/ed-1.pem");
    const NOW: u64 = 1_700_000_000;

    fn policy(keys: &str) -> Policy<'_> {
        Policy {
            keys,
            audiences: &[],
            issuer: None,
            leeway: 0,
            user_claim: "sub",
            workspace_claim: None,
            now: NOW,
        }
    }

    fn claims() -> Value {
        json!({ "sub": "alice", "exp": NOW + 60 })
    }

    /// The fixture set with only the keys of the given kids.
    fn jwks_with(kids: &[&str]) -> String {
        let mut set: Value = serde_json::from_str(JWKS).unwrap();
        let keys = set["keys"].as_array_mut().unwrap();
        keys.retain(|key| kids.contains(&key["kid"].as_str().unwrap()));
        assert_eq!(keys.len(), kids.len());
        set.to_string()
    }

    fn hmac_secret() -> Vec<u8> {
        let set: Value = serde_json::from_str(JWKS).unwrap();
        let hs = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|key| key["kid"] == "hs-1")
            .unwrap();
        base64url_decode(hs["k"].as_str().unwrap()).unwrap()
    }

    fn private_key(name: &str) -> EncodingKey {
        match name {
            "rs-1" => EncodingKey::from_rsa_pem(RS_1.as_bytes()),
            "rs-2" => EncodingKey::from_rsa_pem(RS_2.as_bytes()),
            "es256-1" => EncodingKey::from_ec_pem(ES256_1.as_bytes()),
            "es384-1" => EncodingKey::from_ec_pem(ES384_1.as_bytes()),
            "ed-1" => EncodingKey::from_ed_pem(ED_1.as_bytes()),
            "hs-1" => Ok(EncodingKey::from_secret(&hmac_secret())),
            _ => panic!("no test key {name}"),
        }
        .unwrap()
    }

    /// A token signed by the private key `key`, naming `kid` in its header.
    fn sign_with(alg: Algorithm, key: &str, kid: Option<&str>, claims: &Value) -> String {
        let header = jsonwebtoken::Header {
            kid: kid.map(str::to_owned),
            ..jsonwebtoken::Header::new(alg)
        };
        encode(&header, claims, &private_key(key)).unwrap()
    }

    fn sign(alg: Algorithm, kid: &str, claims: &Value) -> String {
        sign_with(alg, kid, Some(kid), claims)
    }

    fn verify_claims(claims: &Value, policy: &Policy) -> Result<Verified, TokenError> {
        verify(&sign(Algorithm::RS256, "rs-1", claims), policy)
    }

    fn accepts(alg: Algorithm, name: &'static str, kid: &str) {
        let verified = verify(&sign(alg, kid, &claims()), &policy(JWKS)).unwrap();
        assert_eq!(
            verified,
            Verified {
                user: "alice".into(),
                workspace: None,
                kid: Some(kid.into()),
                alg: name,
            }
        );
    }

    #[test]
    fn hs256_verifies() {
        accepts(Algorithm::HS256, "HS256", "hs-1");
    }

    #[test]
    fn hs384_verifies() {
        accepts(Algorithm::HS384, "HS384", "hs-1");
    }

    #[test]
    fn hs512_verifies() {
        accepts(Algorithm::HS512, "HS512", "hs-1");
    }

    #[test]
    fn rs256_verifies() {
        accepts(Algorithm::RS256, "RS256", "rs-1");
    }

    #[test]
    fn rs384_verifies() {
        accepts(Algorithm::RS384, "RS384", "rs-1");
    }

    #[test]
    fn rs512_verifies() {
        accepts(Algorithm::RS512, "RS512", "rs-1");
    }

    #[test]
    fn es256_verifies() {
        accepts(Algorithm::ES256, "ES256", "es256-1");
    }

    #[test]
    fn es384_verifies() {
        accepts(Algorithm::ES384, "ES384", "es384-1");
    }

    #[test]
    fn eddsa_verifies() {
        accepts(Algorithm::EdDSA, "EdDSA", "ed-1");
    }

    #[test]
    fn expired_token_is_refused() {
        let expired = json!({ "sub": "alice", "exp": NOW - 1 });
        assert_eq!(
            verify_claims(&expired, &policy(JWKS)),
            Err(TokenError::Expired)
        );
        // exp is the first instant the token is no longer valid.
        let at_exp = json!({ "sub": "alice", "exp": NOW });
        assert_eq!(
            verify_claims(&at_exp, &policy(JWKS)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn expired_within_leeway_is_accepted() {
        let expired = json!({ "sub": "alice", "exp": NOW - 10 });
        let lenient = Policy {
            leeway: 30,
            ..policy(JWKS)
        };
        assert_eq!(verify_claims(&expired, &lenient).unwrap().user, "alice");
        let long_expired = json!({ "sub": "alice", "exp": NOW - 30 });
        assert_eq!(
            verify_claims(&long_expired, &lenient),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn exp_is_required_and_numeric() {
        let no_exp = json!({ "sub": "alice" });
        assert_eq!(
            verify_claims(&no_exp, &policy(JWKS)),
            Err(TokenError::MissingClaim("exp".into()))
        );
        let text_exp = json!({ "sub": "alice", "exp": (NOW + 60).to_string() });
        assert_eq!(
            verify_claims(&text_exp, &policy(JWKS)),
            Err(TokenError::BadClaim("exp".into()))
        );
        let fractional = json!({ "sub": "alice", "exp": NOW as f64 + 0.5 });
        assert!(verify_claims(&fractional, &policy(JWKS)).is_ok());
    }

    #[test]
    fn not_yet_valid_token_is_refused() {
        let early = json!({ "sub": "alice", "exp": NOW + 600, "nbf": NOW + 60 });
        assert_eq!(
            verify_claims(&early, &policy(JWKS)),
            Err(TokenError::NotYetValid)
        );
        let lenient = Policy {
            leeway: 60,
            ..policy(JWKS)
        };
        assert!(verify_claims(&early, &lenient).is_ok());
        let now = json!({ "sub": "alice", "exp": NOW + 600, "nbf": NOW });
        assert!(verify_claims(&now, &policy(JWKS)).is_ok());
    }

    #[test]
    fn wrong_audience_is_refused() {
        let strict = Policy {
            audiences: &["fluent", "api"],
            ..policy(JWKS)
        };
        let other = json!({ "sub": "alice", "exp": NOW + 60, "aud": "billing" });
        assert_eq!(
            verify_claims(&other, &strict),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            verify_claims(&claims(), &strict),
            Err(TokenError::MissingClaim("aud".into()))
        );
        let ours = json!({ "sub": "alice", "exp": NOW + 60, "aud": "api" });
        assert!(verify_claims(&ours, &strict).is_ok());
        // Unchecked when no audience is configured.
        assert!(verify_claims(&other, &policy(JWKS)).is_ok());
    }

    #[test]
    fn audience_array_matches_any() {
        let strict = Policy {
            audiences: &["fluent"],
            ..policy(JWKS)
        };
        let several = json!({ "sub": "alice", "exp": NOW + 60, "aud": ["billing", "fluent"] });
        assert!(verify_claims(&several, &strict).is_ok());
        let none_ours = json!({ "sub": "alice", "exp": NOW + 60, "aud": ["billing", "crm"] });
        assert_eq!(
            verify_claims(&none_ours, &strict),
            Err(TokenError::WrongAudience)
        );
        let not_text = json!({ "sub": "alice", "exp": NOW + 60, "aud": ["fluent", 7] });
        assert_eq!(
            verify_claims(&not_text, &strict),
            Err(TokenError::BadClaim("aud".into()))
        );
    }

    #[test]
    fn wrong_issuer_is_refused() {
        let strict = Policy {
            issuer: Some("https://id.example.com"),
            ..policy(JWKS)
        };
        let other = json!({ "sub": "alice", "exp": NOW + 60, "iss": "https://evil.example.com" });
        assert_eq!(verify_claims(&other, &strict), Err(TokenError::WrongIssuer));
        assert_eq!(
            verify_claims(&claims(), &strict),
            Err(TokenError::MissingClaim("iss".into()))
        );
        let ours = json!({ "sub": "alice", "exp": NOW + 60, "iss": "https://id.example.com" });
        assert!(verify_claims(&ours, &strict).is_ok());
    }

    #[test]
    fn tampered_payload_is_refused() {
        let token = sign(Algorithm::RS256, "rs-1", &claims());
        let admin = sign(
            Algorithm::RS256,
            "rs-1",
            &json!({ "sub": "admin", "exp": NOW + 60 }),
        );
        let [header, _, signature] = token.split('.').collect::<Vec<_>>()[..] else {
            unreachable!()
        };
        let forged_payload = admin.split('.').nth(1).unwrap();
        let forged = format!("{header}.{forged_payload}.{signature}");
        assert_eq!(
            verify(&forged, &policy(JWKS)),
            Err(TokenError::BadSignature)
        );
        // HMAC and EdDSA alike.
        for (alg, kid) in [(Algorithm::HS256, "hs-1"), (Algorithm::EdDSA, "ed-1")] {
            let token = sign(alg, kid, &claims());
            let (message, _) = token.rsplit_once('.').unwrap();
            let other = sign(alg, kid, &json!({ "sub": "bob", "exp": NOW + 60 }));
            let (_, signature) = other.rsplit_once('.').unwrap();
            let forged = format!("{message}.{signature}");
            assert_eq!(
                verify(&forged, &policy(JWKS)),
                Err(TokenError::BadSignature)
            );
        }
    }

    #[test]
    fn alg_none_is_refused() {
        let signed = sign(Algorithm::HS256, "hs-1", &claims());
        let payload = signed.split('.').nth(1).unwrap();
        // {"alg":"none","typ":"JWT"}, {"alg":"None","kid":"hs-1"}, {"alg":"NONE"}
        for header in [
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
            "eyJhbGciOiJOb25lIiwia2lkIjoiaHMtMSJ9",
            "eyJhbGciOiJOT05FIn0",
        ] {
            let unsigned = format!("{header}.{payload}.");
            assert_eq!(
                verify(&unsigned, &policy(JWKS)),
                Err(TokenError::AlgorithmNone)
            );
        }
    }

    #[test]
    fn hs256_signed_with_rsa_public_key_is_refused() {
        // The key-confusion attack: the attacker signs HS256 with the
        // published RSA public key's PEM text as the HMAC secret.
        let forge = |kid: Option<&str>| {
            let header = jsonwebtoken::Header {
                kid: kid.map(str::to_owned),
                ..jsonwebtoken::Header::new(Algorithm::HS256)
            };
            let secret = EncodingKey::from_secret(RS_1_PUBLIC.as_bytes());
            encode(&header, &claims(), &secret).unwrap()
        };
        assert_eq!(
            verify(&forge(Some("rs-1")), &policy(JWKS)),
            Err(TokenError::AlgorithmMismatch {
                alg: "HS256",
                kid: Some("rs-1".into())
            })
        );
        let rsa_only = jwks_with(&["rs-1"]);
        assert_eq!(
            verify(&forge(None), &policy(&rsa_only)),
            Err(TokenError::AlgorithmMismatch {
                alg: "HS256",
                kid: None
            })
        );
        // With an HMAC key in the set, that key is the one tried, and fails.
        assert_eq!(
            verify(&forge(None), &policy(JWKS)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn key_of_another_family_or_curve_is_refused() {
        // Signed by es384-1 but naming es256-1: the curve decides first.
        let token = sign_with(Algorithm::ES384, "es384-1", Some("es256-1"), &claims());
        assert_eq!(
            verify(&token, &policy(JWKS)),
            Err(TokenError::AlgorithmMismatch {
                alg: "ES384",
                kid: Some("es256-1".into())
            })
        );
        let token = sign_with(Algorithm::EdDSA, "ed-1", Some("rs-1"), &claims());
        assert_eq!(
            verify(&token, &policy(JWKS)),
            Err(TokenError::AlgorithmMismatch {
                alg: "EdDSA",
                kid: Some("rs-1".into())
            })
        );
    }

    #[test]
    fn jwk_alg_member_restricts_its_key() {
        // rs-2's JWK says "alg": "RS256".
        assert!(verify(&sign(Algorithm::RS256, "rs-2", &claims()), &policy(JWKS)).is_ok());
        assert_eq!(
            verify(&sign(Algorithm::RS384, "rs-2", &claims()), &policy(JWKS)),
            Err(TokenError::AlgorithmMismatch {
                alg: "RS384",
                kid: Some("rs-2".into())
            })
        );
    }

    #[test]
    fn short_hmac_secret_cannot_verify_longer_hashes() {
        // 48 bytes: enough for HS256 and HS384, not HS512.
        let secret = vec![7u8; 48];
        let jwks = json!({ "keys": [{ "kty": "oct", "kid": "hs-48", "k": "BwcH".repeat(16) }] });
        let jwks = jwks.to_string();
        let token = |alg| {
            let header = jsonwebtoken::Header {
                kid: Some("hs-48".into()),
                ..jsonwebtoken::Header::new(alg)
            };
            encode(&header, &claims(), &EncodingKey::from_secret(&secret)).unwrap()
        };
        assert!(verify(&token(Algorithm::HS384), &policy(&jwks)).is_ok());
        assert_eq!(
            verify(&token(Algorithm::HS512), &policy(&jwks)),
            Err(TokenError::AlgorithmMismatch {
                alg: "HS512",
                kid: Some("hs-48".into())
            })
        );
    }

    #[test]
    fn unknown_kid_is_refused() {
        let token = sign_with(Algorithm::RS256, "rs-1", Some("rs-9"), &claims());
        assert_eq!(
            verify(&token, &policy(JWKS)),
            Err(TokenError::UnknownKey("rs-9".into()))
        );
    }

    #[test]
    fn no_kid_needs_exactly_one_usable_key() {
        // rs-1 and rs-2 can both verify RS256.
        let token = sign_with(Algorithm::RS256, "rs-1", None, &claims());
        assert_eq!(verify(&token, &policy(JWKS)), Err(TokenError::AmbiguousKey));
        // Only rs-1 can verify RS384 (rs-2 is restricted to RS256).
        let token = sign_with(Algorithm::RS384, "rs-1", None, &claims());
        assert_eq!(
            verify(&token, &policy(JWKS)).unwrap().kid.as_deref(),
            Some("rs-1")
        );
        // Only es384-1 can verify ES384.
        let token = sign_with(Algorithm::ES384, "es384-1", None, &claims());
        assert_eq!(verify(&token, &policy(JWKS)).unwrap().alg, "ES384");
        // No key at all can verify ES256 in a set of RSA keys.
        let token = sign_with(Algorithm::ES256, "es256-1", None, &claims());
        assert_eq!(
            verify(&token, &policy(&jwks_with(&["rs-1", "rs-2"]))),
            Err(TokenError::AlgorithmMismatch {
                alg: "ES256",
                kid: None
            })
        );
    }

    #[test]
    fn rotated_keys_verify_by_kid() {
        let both = jwks_with(&["rs-1", "rs-2"]);
        let old = sign(Algorithm::RS256, "rs-1", &claims());
        let new = sign(Algorithm::RS256, "rs-2", &claims());
        assert_eq!(
            verify(&old, &policy(&both)).unwrap().kid.as_deref(),
            Some("rs-1")
        );
        assert_eq!(
            verify(&new, &policy(&both)).unwrap().kid.as_deref(),
            Some("rs-2")
        );
        // A key's signature under another key's kid does not verify.
        let mislabelled = sign_with(Algorithm::RS256, "rs-2", Some("rs-1"), &claims());
        assert_eq!(
            verify(&mislabelled, &policy(&both)),
            Err(TokenError::BadSignature)
        );
        // rs-1 retired: its tokens fail, rs-2's still pass. The changed
        // setting replaces the cached set.
        let retired = jwks_with(&["rs-2"]);
        assert_eq!(
            verify(&old, &policy(&retired)),
            Err(TokenError::UnknownKey("rs-1".into()))
        );
        assert!(verify(&new, &policy(&retired)).is_ok());
        assert!(verify(&old, &policy(&both)).is_ok());
    }

    #[test]
    fn missing_or_empty_subject_is_refused() {
        let no_sub = json!({ "exp": NOW + 60 });
        assert_eq!(
            verify_claims(&no_sub, &policy(JWKS)),
            Err(TokenError::MissingClaim("sub".into()))
        );
        for bad in [
            json!(""),
            json!(1.5),
            json!(true),
            json!(["alice"]),
            json!("a\0b"),
        ] {
            let claims = json!({ "sub": bad, "exp": NOW + 60 });
            assert_eq!(
                verify_claims(&claims, &policy(JWKS)),
                Err(TokenError::BadClaim("sub".into()))
            );
        }
    }

    #[test]
    fn integer_subject_is_its_decimal_text() {
        let numbered = json!({ "sub": 42, "exp": NOW + 60 });
        assert_eq!(verify_claims(&numbered, &policy(JWKS)).unwrap().user, "42");
    }

    #[test]
    fn user_claim_is_configurable() {
        let email = Policy {
            user_claim: "email",
            ..policy(JWKS)
        };
        let claims = json!({ "sub": "x1", "email": "alice@example.com", "exp": NOW + 60 });
        assert_eq!(
            verify_claims(&claims, &email).unwrap().user,
            "alice@example.com"
        );
        assert_eq!(
            verify_claims(&json!({ "sub": "x1", "exp": NOW + 60 }), &email),
            Err(TokenError::MissingClaim("email".into()))
        );
    }

    #[test]
    fn workspace_claim_is_required_when_configured() {
        let tenant = Policy {
            workspace_claim: Some("tenant"),
            ..policy(JWKS)
        };
        let with = json!({ "sub": "alice", "tenant": "acme", "exp": NOW + 60 });
        let verified = verify_claims(&with, &tenant).unwrap();
        assert_eq!(verified.workspace.as_deref(), Some("acme"));
        assert_eq!(
            verify_claims(&claims(), &tenant),
            Err(TokenError::MissingClaim("tenant".into()))
        );
        let empty = json!({ "sub": "alice", "tenant": "", "exp": NOW + 60 });
        assert_eq!(
            verify_claims(&empty, &tenant),
            Err(TokenError::BadClaim("tenant".into()))
        );
        // Not configured: not read.
        assert_eq!(verify_claims(&with, &policy(JWKS)).unwrap().workspace, None);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = sign(Algorithm::ES256, "es256-1", &claims());
        let (header, rest) = good.split_once('.').unwrap();
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c.d.e",
            &format!("{good}.x"),
            &format!("{header}!.{rest}"),
            &format!("e30.{rest}"), // {} has no alg
        ] {
            let result = verify(token, &policy(JWKS));
            assert!(
                matches!(result, Err(TokenError::Malformed(_))),
                "{token}: {result:?}"
            );
        }
        // {"alg":"PS256","kid":"rs-1"}: a real algorithm fluent does not take.
        assert_eq!(
            verify(
                &format!("eyJhbGciOiJQUzI1NiIsImtpZCI6InJzLTEifQ.{rest}"),
                &policy(JWKS)
            ),
            Err(TokenError::UnsupportedAlgorithm("PS256".into()))
        );
    }

    #[test]
    fn critical_header_extensions_are_refused() {
        let header = jsonwebtoken::Header {
            kid: Some("es256-1".into()),
            crit: Some(vec!["exp".into()]),
            ..jsonwebtoken::Header::new(Algorithm::ES256)
        };
        let token = encode(&header, &claims(), &private_key("es256-1")).unwrap();
        assert!(matches!(
            verify(&token, &policy(JWKS)),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn unusable_key_sets_are_configuration_errors() {
        let token = sign(Algorithm::HS256, "hs-1", &claims());
        // 32 zero bytes: (0, 0) is not a point of P-256.
        let zero = "A".repeat(43);
        let off_curve = json!({ "keys": [{ "kty": "EC", "crv": "P-256", "x": zero, "y": zero }] });
        let sets = [
            ("", "no token keys are configured"),
            (" \n", "no token keys are configured"),
            (r#"{"keys": []}"#, "no token keys are configured"),
            ("{keys", "it is not JSON (line 1, column 2)"),
            (
                r#"[{"kty": "oct"}]"#,
                "not a JSON object with a \"keys\" array",
            ),
            (r#"{"keys": [{"k": "abc"}]}"#, "key #1 has no \"kty\""),
            (
                r#"{"keys": [{"kty": "oct", "kid": 5}]}"#,
                "key #1 is not a valid JWK",
            ),
            (
                r#"{"keys": [{"kty": "RSA", "kid": "r", "n": "AQAB"}]}"#,
                "key \"r\" lacks a member",
            ),
            (
                r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#,
                "modulus is not 2048 to 4096 bits",
            ),
            (
                r#"{"keys": [{"kty": "oct", "k": "c2hvcnQ"}]}"#,
                "shorter than 256 bits",
            ),
            (r#"{"keys": [{"kty": "oct", "k": "!!"}]}"#, "not base64url"),
            (
                &off_curve.to_string(),
                "not a valid public key for its curve",
            ),
            (
                r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AQ"}]}"#,
                "not a valid public key for its curve",
            ),
            (
                r#"{"keys": [{"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]}"#,
                "none of its keys can verify token signatures",
            ),
        ];
        for (keys, reason) in sets {
            let error = verify(&token, &policy(keys)).unwrap_err();
            assert!(error.is_configuration(), "{keys}: {error:?}");
            assert!(
                error.reason().contains(reason),
                "{keys}: {}",
                error.reason()
            );
        }
        assert!(!TokenError::BadSignature.is_configuration());
    }

    #[test]
    fn key_set_errors_do_not_quote_secrets() {
        let token = sign(Algorithm::HS256, "hs-1", &claims());
        let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";
        for jwk in [
            json!({ "kty": "oct", "kid": "hs-1", "k": [secret] }),
            json!({ "kty": "oct", "kid": "hs-1", "k": secret, "use": 1 }),
            json!({ "kty": "oct", "kid": "hs-1", "k": format!("{secret}!") }),
        ] {
            let keys = json!({ "keys": [jwk] }).to_string();
            let error = verify(&token, &policy(&keys)).unwrap_err();
            assert!(error.is_configuration(), "{error:?}");
            assert!(!error.reason().contains(secret), "{}", error.reason());
        }
    }

    #[test]
    fn keys_that_cannot_sign_are_skipped() {
        // A provider's set may hold encryption keys, other curves and
        // algorithms; the usable key still verifies without a kid.
        let mut set: Value = serde_json::from_str(&jwks_with(&["es256-1"])).unwrap();
        let keys = set["keys"].as_array_mut().unwrap();
        keys.push(json!({ "kty": "EC", "crv": "secp256k1", "x": "AQ", "y": "AQ" }));
        keys.push(json!({ "kty": "OKP", "crv": "X25519", "x": "AQ" }));
        keys.push(json!({ "kty": "EC", "crv": "P-521", "x": "AQ", "y": "AQ" }));
        keys.push(json!({ "kty": "RSA", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB" }));
        keys.push(json!({ "kty": "oct", "key_ops": ["encrypt"], "k": "AQAB" }));
        keys.push(json!({ "kty": "foo" }));
        let token = sign_with(Algorithm::ES256, "es256-1", None, &claims());
        assert!(verify(&token, &policy(&set.to_string())).is_ok());
    }

    #[test]
    fn reasons_are_lower_case_phrases() {
        let errors = [
            TokenError::NoKeys,
            TokenError::BadKeySet("key #1 is not a valid JWK".into()),
            TokenError::Malformed("its header has no \"alg\"".into()),
            TokenError::AlgorithmNone,
            TokenError::UnsupportedAlgorithm("PS256".into()),
            TokenError::UnknownKey("rs-9".into()),
            TokenError::AmbiguousKey,
            TokenError::AlgorithmMismatch {
                alg: "HS256",
                kid: Some("rs-1".into()),
            },
            TokenError::BadSignature,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::MissingClaim("sub".into()),
            TokenError::BadClaim("sub".into()),
            TokenError::WrongAudience,
            TokenError::WrongIssuer,
        ];
        for error in errors {
            let reason = error.reason();
            assert!(reason.starts_with(char::is_lowercase), "{reason}");
            assert!(!reason.ends_with('.'), "{reason}");
        }
        assert_eq!(TokenError::Expired.reason(), "the token expired");
    }

    #[test]
    fn token_text_in_errors_is_clipped() {
        let kid = "k".repeat(1000);
        let token = sign_with(Algorithm::RS256, "rs-1", Some(&kid), &claims());
        let Err(TokenError::UnknownKey(shown)) = verify(&token, &policy(JWKS)) else {
            panic!("unknown key expected");
        };
        assert!(shown.len() < 100);
    }

    #[test]
    fn base64url_decodes_unpadded_text() {
        assert_eq!(base64url_decode("").unwrap(), b"");
        assert_eq!(base64url_decode("Zg").unwrap(), b"f");
        assert_eq!(base64url_decode("Zm8").unwrap(), b"fo");
        assert_eq!(base64url_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64url_decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(base64url_decode("Zm9vY"), None);
        assert_eq!(base64url_decode("Zm9v="), None);
        assert_eq!(base64url_decode("Zm+v"), None);
    }
}
