//! Our signing keys and the JWKS we publish (RFC 7517, RFC 8037 for Ed25519).
//!
//! `SIGNING_KEY` is one private JWK (Ed25519 `OKP` or P-256 `EC`) that signs every new token.
//! `PUBLISHED_KEYS` adds public JWKs (a JSON array or a `{"keys": [...]}` set) that we still
//! accept and publish: the previous key while its tokens live out, or the next key ahead of a
//! switch. Each key's algorithm is pinned by its type (DESIGN.md rule 6): a token whose header
//! names another algorithm is refused whatever its signature.

use crate::http_util::{b64url, b64url_decode};
use crate::platform::{Crypto, PrivateKey, PublicKey, SigAlg};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The key that signs new tokens.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: SigAlg,
    pub private: PrivateKey,
    pub public: PublicKey,
}

/// A key we accept signatures from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    pub kid: String,
    pub alg: SigAlg,
    pub public: PublicKey,
}

/// The signing key plus every key we verify with.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub signing: Option<SigningKey>,
    pub verifying: Vec<VerifyingKey>,
}

/// A base64url member of a JWK, decoded to exactly `N` bytes.
fn fixed<const N: usize>(
    k: &Map<String, Value>,
    name: &str,
    what: &str,
) -> Result<[u8; N], String> {
    let bytes = bytes_member(k, name, what)?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("{what} must be {N} bytes, got {len}"))
}

/// A base64url member of a JWK (RFC 7518 6: no padding).
fn bytes_member(k: &Map<String, Value>, name: &str, what: &str) -> Result<Vec<u8>, String> {
    let s = k
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what} is missing"))?;
    b64url_decode(s).ok_or_else(|| format!("{what} is not base64url"))
}

/// RFC 7638 thumbprint, base64url: the `kid` when a JWK has none. The required members of the
/// key type, as given, in lexicographic order, without whitespace (serde_json's map is sorted).
fn thumbprint(k: &Map<String, Value>, members: &[&str]) -> String {
    let canonical: Map<String, Value> = members
        .iter()
        .map(|m| ((*m).to_string(), k.get(*m).cloned().unwrap_or(Value::Null)))
        .collect();
    b64url(&Sha256::digest(
        Value::Object(canonical).to_string().as_bytes(),
    ))
}

// Does a private key belong to its public key? Natively the curve maths answers at once. The wasm
// builds do not link that maths (it was a tenth of the Worker's size): they leave the answer to
// `KeySet::check_signing_pair`, a sign-and-verify probe through WebCrypto when an isolate starts.
#[cfg(any(not(target_arch = "wasm32"), feature = "rust-crypto"))]
fn ed25519_pair_ok(seed: &[u8; 32], x: &[u8; 32]) -> bool {
    crate::crypto::ed25519_public_from_seed(seed) == *x
}

#[cfg(any(not(target_arch = "wasm32"), feature = "rust-crypto"))]
fn p256_pair_ok(d: &[u8; 32], x: &[u8; 32], y: &[u8; 32]) -> bool {
    crate::crypto::p256_public_from_scalar(d) == Some((*x, *y))
}

#[cfg(all(target_arch = "wasm32", not(feature = "rust-crypto")))]
fn ed25519_pair_ok(_seed: &[u8; 32], _x: &[u8; 32]) -> bool {
    true
}

#[cfg(all(target_arch = "wasm32", not(feature = "rust-crypto")))]
fn p256_pair_ok(_d: &[u8; 32], _x: &[u8; 32], _y: &[u8; 32]) -> bool {
    true
}

/// Parses one JWK into (kid, alg, public, private?). The `alg` member, when present, must agree
/// with the key type; it is never what decides the algorithm. Shared by the Worker (our keys,
/// clients' and issuers' JWKS) and the browser package, so it reads the JSON directly rather
/// than through a JWK type with every key type's maths behind it.
fn parse_jwk(v: &Value) -> Result<(String, SigAlg, PublicKey, Option<PrivateKey>), String> {
    let k = v.as_object().ok_or("not a JWK: not a JSON object")?;
    let kty = k.get("kty").and_then(Value::as_str).unwrap_or_default();
    let crv = k.get("crv").and_then(Value::as_str).unwrap_or_default();
    let has_d = k.contains_key("d");
    let (alg, public, private, members): (_, _, _, &[&str]) = match (kty, crv) {
        ("OKP", "Ed25519") => {
            let x: [u8; 32] = fixed(k, "x", "Ed25519 x")?;
            let private = if has_d {
                let seed: [u8; 32] = fixed(k, "d", "Ed25519 d")?;
                if !ed25519_pair_ok(&seed, &x) {
                    return Err("Ed25519 d and x do not belong together".into());
                }
                Some(PrivateKey::Ed25519 { seed, public: x })
            } else {
                None
            };
            let members = &["crv", "kty", "x"];
            (SigAlg::EdDsa, PublicKey::Ed25519(x), private, members)
        }
        ("EC", "P-256") => {
            let x: [u8; 32] = fixed(k, "x", "P-256 x")?;
            let y: [u8; 32] = fixed(k, "y", "P-256 y")?;
            let private = if has_d {
                let d: [u8; 32] = fixed(k, "d", "P-256 d")?;
                if !p256_pair_ok(&d, &x, &y) {
                    return Err("P-256 d does not match x and y".into());
                }
                Some(PrivateKey::P256 { d, x, y })
            } else {
                None
            };
            let members = &["crv", "kty", "x", "y"];
            (SigAlg::Es256, PublicKey::P256 { x, y }, private, members)
        }
        ("EC", "P-384") => {
            let x: [u8; 48] = fixed(k, "x", "P-384 x")?;
            let y: [u8; 48] = fixed(k, "y", "P-384 y")?;
            let members = &["crv", "kty", "x", "y"];
            (SigAlg::Es384, PublicKey::P384 { x, y }, None, members)
        }
        ("RSA", _) => {
            let n = bytes_member(k, "n", "RSA n")?;
            let e = bytes_member(k, "e", "RSA e")?;
            // Leading zero octets do not count (RFC 7518 6.3.1.1 forbids them, some encoders
            // still write one).
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 {
                return Err("RSA keys must have at least 2048 bits".into());
            }
            // An RSA JWK may say which hash it is for; RS256 when it does not.
            let alg = match k.get("alg").and_then(Value::as_str) {
                Some("RS384") => SigAlg::Rs384,
                _ => SigAlg::Rs256,
            };
            let members = &["e", "kty", "n"];
            (alg, PublicKey::Rsa { n, e }, None, members)
        }
        _ => {
            return Err(
                "only Ed25519 (OKP), P-256 and P-384 (EC) and RSA keys are supported".into(),
            )
        }
    };
    if let Some(a) = k.get("alg") {
        if a.as_str() != Some(alg.jws_name()) {
            return Err(format!(
                "alg {a} does not fit the key type, which signs {}",
                alg.jws_name()
            ));
        }
    }
    let kid = match k.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
        Some(_) => return Err("kid must be a non-empty string".into()),
        None => thumbprint(k, members),
    };
    Ok((kid, alg, public, private))
}

/// A public JWK carried by a DPoP proof (RFC 9449 4.2): its pinned algorithm, the key, and its
/// RFC 7638 thumbprint (whatever `kid` it names). Private members are refused by the caller.
pub fn public_jwk(v: &Value) -> Result<(SigAlg, PublicKey, String), String> {
    let mut k = v.as_object().ok_or("jwk is not a JSON object")?.clone();
    k.remove("kid");
    let (thumb, alg, public, _) = parse_jwk(&Value::Object(k))?;
    Ok((alg, public, thumb))
}

impl KeySet {
    /// Builds the key set from the `SIGNING_KEY` and `PUBLISHED_KEYS` secrets.
    pub fn from_config(signing: Option<&str>, published: Option<&str>) -> Result<KeySet, String> {
        let mut set = KeySet::default();
        if let Some(s) = signing.filter(|s| !s.trim().is_empty()) {
            let v: Value =
                serde_json::from_str(s).map_err(|e| format!("SIGNING_KEY is not JSON: {e}"))?;
            let (kid, alg, public, private) =
                parse_jwk(&v).map_err(|e| format!("SIGNING_KEY: {e}"))?;
            let private = private.ok_or("SIGNING_KEY has no private part (d)")?;
            set.verifying.push(VerifyingKey {
                kid: kid.clone(),
                alg,
                public: public.clone(),
            });
            set.signing = Some(SigningKey {
                kid,
                alg,
                private,
                public,
            });
        }
        if let Some(p) = published.filter(|s| !s.trim().is_empty()) {
            let v: Value =
                serde_json::from_str(p).map_err(|e| format!("PUBLISHED_KEYS is not JSON: {e}"))?;
            let list = match &v {
                Value::Array(a) => a.clone(),
                Value::Object(o) => match o.get("keys") {
                    Some(Value::Array(a)) => a.clone(),
                    _ => return Err("PUBLISHED_KEYS: an object must have a keys array".into()),
                },
                _ => return Err("PUBLISHED_KEYS must be a JSON array of JWKs".into()),
            };
            for (i, k) in list.iter().enumerate() {
                let (kid, alg, public, _) =
                    parse_jwk(k).map_err(|e| format!("PUBLISHED_KEYS[{i}]: {e}"))?;
                if set.verifying.iter().any(|v| v.kid == kid) {
                    // The active key listed again (a common copy-paste): fine if it is the same.
                    if set
                        .verifying
                        .iter()
                        .any(|v| v.kid == kid && v.public == public)
                    {
                        continue;
                    }
                    return Err(format!("PUBLISHED_KEYS[{i}]: kid {kid} is used twice"));
                }
                set.verifying.push(VerifyingKey { kid, alg, public });
            }
        }
        Ok(set)
    }

    /// Signs a probe with the signing key and verifies it with the published public key: a
    /// `SIGNING_KEY` whose `d` does not belong to its `x`/`y` would issue tokens nobody can
    /// verify. The Worker runs this once per isolate (its parser skips the curve maths).
    pub async fn check_signing_pair(&self, crypto: &dyn Crypto) -> Result<(), String> {
        let Some(k) = &self.signing else {
            return Ok(());
        };
        let probe = b"edge-authorizer signing key check";
        let sig = crypto
            .sign(k.alg, &k.kid, &k.private, probe)
            .await
            .map_err(|e| format!("SIGNING_KEY cannot sign: {e}"))?;
        match crypto.verify(k.alg, &k.kid, &k.public, probe, &sig).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("SIGNING_KEY: d does not belong to the public key".into()),
            Err(e) => Err(format!("SIGNING_KEY cannot verify: {e}")),
        }
    }

    pub fn find(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.iter().find(|k| k.kid == kid)
    }

    /// The key for a token: by `kid`, or the only key when the token names none.
    pub fn resolve(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        match kid {
            Some(k) => self.find(k),
            None if self.verifying.len() == 1 => self.verifying.first(),
            None => None,
        }
    }

    /// A public JWKS from an external issuer (RFC 7517 5): keys we cannot use (encryption keys,
    /// unsupported types) are skipped, not fatal, as IdPs publish all sorts.
    pub fn from_jwks(jwks: &Value) -> Result<KeySet, String> {
        let list = match jwks {
            Value::Object(o) => o
                .get("keys")
                .and_then(Value::as_array)
                .ok_or("a JWKS must be an object with a keys array")?,
            Value::Array(a) => a,
            _ => return Err("a JWKS must be an object with a keys array".into()),
        };
        let mut set = KeySet::default();
        for k in list {
            if k.get("use").and_then(Value::as_str).unwrap_or("sig") != "sig" {
                continue;
            }
            let Ok((kid, alg, public, _)) = parse_jwk(k) else {
                continue;
            };
            // RFC 7517 4.5: kids SHOULD be distinct; a token names one kid, so the first wins.
            if set.find(&kid).is_none() {
                set.verifying.push(VerifyingKey { kid, alg, public });
            }
        }
        Ok(set)
    }

    /// A shared HMAC secret (HS256) as the only key.
    pub fn hmac(secret: &[u8]) -> KeySet {
        KeySet {
            signing: None,
            verifying: vec![VerifyingKey {
                kid: String::new(),
                alg: SigAlg::Hs256,
                public: PublicKey::Hmac(secret.to_vec()),
            }],
        }
    }

    /// The public JWKS (RFC 7517 5), signing key first.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .verifying
            .iter()
            .filter_map(|k| {
                let mut jwk = match &k.public {
                    PublicKey::Ed25519(x) => {
                        json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(x)})
                    }
                    PublicKey::P256 { x, y } => {
                        json!({"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y)})
                    }
                    PublicKey::Rsa { n, e } => {
                        json!({"kty": "RSA", "n": b64url(n), "e": b64url(e)})
                    }
                    PublicKey::P384 { x, y } => {
                        json!({"kty": "EC", "crv": "P-384", "x": b64url(x), "y": b64url(y)})
                    }
                    // Shared secrets are never published.
                    PublicKey::Hmac(_) => return None,
                };
                jwk["kid"] = json!(k.kid);
                jwk["alg"] = json!(k.alg.jws_name());
                jwk["use"] = json!("sig");
                Some(jwk)
            })
            .collect();
        json!({ "keys": keys })
    }
}

// ---- PEM public keys (a TokenIntrospector's `jwt.keys`) ----

/// One DER element (X.690 8.1): its tag, its contents and what follows it. Definite lengths
/// only (DER), at most four length octets.
fn der_next(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("DER: unexpected end")?;
    let (&first, rest) = rest.split_first().ok_or("DER: unexpected end")?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err("DER: bad length".into());
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err("DER: element longer than its input".into());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn der_expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let (t, body, rest) = der_next(input)?;
    if t != tag {
        return Err(format!("DER: expected {what}"));
    }
    Ok((body, rest))
}

/// An unsigned DER INTEGER without its sign octet.
fn der_uint(input: &[u8]) -> Result<(Vec<u8>, &[u8]), String> {
    let (body, rest) = der_expect(input, 0x02, "an INTEGER")?;
    let trimmed: Vec<u8> = body.iter().copied().skip_while(|b| *b == 0).collect();
    Ok((trimmed, rest))
}

/// PKCS #1 RSAPublicKey (RFC 8017 A.1.1): `SEQUENCE { n INTEGER, e INTEGER }`.
fn rsa_from_pkcs1(der: &[u8]) -> Result<PublicKey, String> {
    let (seq, _) = der_expect(der, 0x30, "an RSAPublicKey SEQUENCE")?;
    let (n, rest) = der_uint(seq)?;
    let (e, _) = der_uint(rest)?;
    if n.len() * 8 < 2048 {
        return Err("RSA keys must have at least 2048 bits".into());
    }
    if e.is_empty() {
        return Err("RSA exponent is zero".into());
    }
    Ok(PublicKey::Rsa { n, e })
}

/// DER of OID 1.2.840.113549.1.1.1 (rsaEncryption, RFC 8017 A.1).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// DER of OID 1.2.840.10045.2.1 (id-ecPublicKey, RFC 5480 2.1.1).
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// DER of OID 1.2.840.10045.3.1.7 (secp256r1 / P-256, RFC 5480 2.1.1.1).
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// SubjectPublicKeyInfo (RFC 5280 4.1.2.7) holding an RSA or P-256 key.
fn from_spki(der: &[u8]) -> Result<PublicKey, String> {
    let (spki, _) = der_expect(der, 0x30, "a SubjectPublicKeyInfo SEQUENCE")?;
    let (alg_id, rest) = der_expect(spki, 0x30, "an AlgorithmIdentifier")?;
    let (bits, _) = der_expect(rest, 0x03, "a BIT STRING")?;
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err("DER: a public key BIT STRING with unused bits".into()),
    };
    let (oid, params) = der_expect(alg_id, 0x06, "an algorithm OID")?;
    if oid == OID_RSA {
        return rsa_from_pkcs1(key);
    }
    if oid == OID_EC {
        let (curve, _) = der_expect(params, 0x06, "a named curve")?;
        if curve != OID_P256 {
            return Err("only the P-256 curve is supported for EC keys (ES256)".into());
        }
        return match key {
            [0x04, point @ ..] if point.len() == 64 => {
                let mut x = [0u8; 32];
                let mut y = [0u8; 32];
                x.copy_from_slice(&point[..32]);
                y.copy_from_slice(&point[32..]);
                Ok(PublicKey::P256 { x, y })
            }
            _ => Err("EC public key must be an uncompressed P-256 point".into()),
        };
    }
    Err("only RSA and EC (P-256) public keys are supported".into())
}

/// A PEM public key (RFC 7468 13 `PUBLIC KEY`, or PKCS #1 `RSA PUBLIC KEY`). Private keys and
/// certificates are refused by name, so a pasted private key is never stored as if it were a
/// public one without a word.
pub fn public_key_from_pem(pem: &str) -> Result<PublicKey, String> {
    use base64::Engine;
    let pem = pem.trim();
    let label = pem
        .strip_prefix("-----BEGIN ")
        .and_then(|r| r.split_once("-----"))
        .map(|(l, _)| l)
        .ok_or("is not a PEM block (-----BEGIN PUBLIC KEY-----)")?;
    if label.contains("PRIVATE") {
        return Err("is a private key: give the PUBLIC KEY only".into());
    }
    if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
        return Err(format!(
            "is a PEM {label}; expected PUBLIC KEY or RSA PUBLIC KEY"
        ));
    }
    let end = format!("-----END {label}-----");
    let body = pem
        .split_once("-----\n")
        .or_else(|| pem.split_once("-----\r\n"))
        .or_else(|| pem.split_once("----- "))
        .map(|(_, b)| b)
        .ok_or("is not a PEM block")?;
    let body = body
        .trim_end()
        .strip_suffix(end.as_str())
        .ok_or_else(|| format!("has no {end} line"))?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "PEM body is not base64".to_string())?;
    if label == "RSA PUBLIC KEY" {
        rsa_from_pkcs1(&der)
    } else {
        from_spki(&der)
    }
}

/// Most entries of a TokenIntrospector's `jwt.keys`: a token without a usable `kid` is tried
/// against each key of its algorithm, so the list is kept short.
pub const MAX_INTROSPECTOR_KEYS: usize = 10;

/// Least bytes of an HMAC secret (RFC 7518 3.2: a key of the hash's size or larger).
pub const MIN_HMAC_SECRET: usize = 32;

/// A TokenIntrospector's `jwt.keys` (Aidbox 2505): `{pub: <PEM>, kty: RSA|EC, alg, format: PEM}`
/// or `{k: <secret>, kty: OCT, alg: HS256, format: plain}`. Each key's algorithm is fixed by
/// its type: RSA signs RS256 or RS384, EC (P-256) ES256, OCT HS256; an `alg` or `kty` that does
/// not fit the key is an error (no HS/RS confusion: a PEM key never becomes an HMAC secret).
/// Errors name the entry (`jwt.keys.{i}...`).
pub fn from_introspector_keys(list: &Value) -> Result<Vec<VerifyingKey>, (String, String)> {
    let err = |path: String, msg: &str| Err((path, msg.to_string()));
    let Some(list) = list.as_array().filter(|l| !l.is_empty()) else {
        return err("jwt.keys".into(), "must be a non-empty list of keys");
    };
    if list.len() > MAX_INTROSPECTOR_KEYS {
        return err(
            "jwt.keys".into(),
            &format!("has more than {MAX_INTROSPECTOR_KEYS} keys"),
        );
    }
    let mut out = Vec::new();
    for (i, k) in list.iter().enumerate() {
        let at = |f: &str| format!("jwt.keys.{i}{f}");
        let Some(k) = k.as_object() else {
            return err(at(""), "must be an object with pub or k");
        };
        for f in k.keys() {
            if !["pub", "k", "kty", "alg", "format"].contains(&f.as_str()) {
                return err(
                    at(&format!(".{f}")),
                    "is not a key field (pub, k, kty, alg, format)",
                );
            }
        }
        let text = |f: &str| -> Result<Option<String>, (String, String)> {
            match k.get(f) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err((at(&format!(".{f}")), "must be a string".into())),
            }
        };
        let kty = text("kty")?.map(|s| s.to_ascii_uppercase());
        let alg = text("alg")?;
        let format = text("format")?.map(|s| s.to_ascii_lowercase());
        let (public, alg) = match (text("pub")?, text("k")?) {
            (Some(pem), None) => {
                if format.as_deref().is_some_and(|f| f != "pem") {
                    return err(at(".format"), "must be PEM for a pub key");
                }
                let public = public_key_from_pem(&pem).map_err(|e| (at(".pub"), e))?;
                let (own_kty, algs): (&str, &[SigAlg]) = match public {
                    PublicKey::Rsa { .. } => ("RSA", &[SigAlg::Rs256, SigAlg::Rs384]),
                    _ => ("EC", &[SigAlg::Es256]),
                };
                if kty.as_deref().is_some_and(|t| t != own_kty) {
                    return err(
                        at(".kty"),
                        &format!("says another type than the key ({own_kty})"),
                    );
                }
                let alg = match alg.as_deref() {
                    None => algs[0],
                    Some(a) => match algs.iter().find(|x| x.named(a)) {
                        Some(x) => *x,
                        None => {
                            let names: Vec<&str> = algs.iter().map(|x| x.jws_name()).collect();
                            return err(
                                at(".alg"),
                                &format!("must fit the {own_kty} key: {}", names.join(" or ")),
                            );
                        }
                    },
                };
                (public, alg)
            }
            (None, Some(secret)) => {
                if format.as_deref().is_some_and(|f| f != "plain") {
                    return err(at(".format"), "must be plain for a k secret");
                }
                if kty.as_deref().is_some_and(|t| t != "OCT") {
                    return err(at(".kty"), "must be OCT for a k secret");
                }
                if alg.as_deref().is_some_and(|a| a != "HS256") {
                    return err(at(".alg"), "must be HS256 for a k secret");
                }
                if secret.len() < MIN_HMAC_SECRET {
                    return err(at(".k"), WEAK_SECRET);
                }
                (PublicKey::Hmac(secret.into_bytes()), SigAlg::Hs256)
            }
            _ => {
                return err(
                    at(""),
                    "needs exactly one of pub (a PEM public key) or k (a secret)",
                )
            }
        };
        out.push(VerifyingKey {
            kid: format!("jwt.keys.{i}"),
            alg,
            public,
        });
    }
    Ok(out)
}

/// Why an HMAC secret under 32 bytes is refused (for `jwt.secret` and `jwt.keys.k`).
pub const WEAK_SECRET: &str = "must be at least 32 bytes. Stricter than Aidbox, which accepts \
    shorter ones (its tutorial uses \"very-secret\"): RFC 7518 3.2 requires an HS256 key of at \
    least 256 bits, and a short secret can be found offline by brute force from a single token, \
    after which anyone can sign tokens this issuer's users are trusted with";

#[cfg(test)]
mod pem_tests {
    use super::*;
    use serde_json::json;

    const EC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEU+5qJjL3FO6cdraxnxkbT5GDryyQ\nJX2ixdPzLfrPRt6ItBrdDnhW/CWdlhVVimwGdDlEF0UZUqLgJj1bcAKHvg==\n-----END PUBLIC KEY-----";
    const RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApvYiN1R1x9/V5RRYBF7z\nhyYdBdcpJ7q4sAfEfWyYe1idydqv2I+FAOxp2ofoPMZExtkTsiNdV2Hjy6X0wH2+\nlAp0cQHAdIdL9I+AKfvqK8HEyOQT1fJsKdYHneEa4SKhjqRSD+NaeqMTdKEIOiLk\nUXrdfRsCIrB84WoWtv3Be3oL98jZT/KEIohM5pqTKX4IpEqemRbFAwBq6KjUFs6k\nkrt9s2WO4J1aV2tMOn2a3iEUmHhRk6Kl817Q/nkYsYPLi8feidZbeso9KH17+q7r\nlBPMsgHhZRlm3kyBd84Acq+HPjkJlzSMVxXUDhHOfK74lECGGFMe5PdVZOtJ0qb4\n3wIDAQAB\n-----END PUBLIC KEY-----";
    const RSA_PKCS1_PEM: &str = "-----BEGIN RSA PUBLIC KEY-----\nMIIBCgKCAQEApvYiN1R1x9/V5RRYBF7zhyYdBdcpJ7q4sAfEfWyYe1idydqv2I+F\nAOxp2ofoPMZExtkTsiNdV2Hjy6X0wH2+lAp0cQHAdIdL9I+AKfvqK8HEyOQT1fJs\nKdYHneEa4SKhjqRSD+NaeqMTdKEIOiLkUXrdfRsCIrB84WoWtv3Be3oL98jZT/KE\nIohM5pqTKX4IpEqemRbFAwBq6KjUFs6kkrt9s2WO4J1aV2tMOn2a3iEUmHhRk6Kl\n817Q/nkYsYPLi8feidZbeso9KH17+q7rlBPMsgHhZRlm3kyBd84Acq+HPjkJlzSM\nVxXUDhHOfK74lECGGFMe5PdVZOtJ0qb43wIDAQAB\n-----END RSA PUBLIC KEY-----";

    #[test]
    fn pem_keys_parse_by_type() {
        assert!(matches!(
            public_key_from_pem(EC_PEM),
            Ok(PublicKey::P256 { .. })
        ));
        let Ok(PublicKey::Rsa { n, e }) = public_key_from_pem(RSA_PEM) else {
            panic!("RSA SPKI")
        };
        assert_eq!((n.len(), e.as_slice()), (256, &[1u8, 0, 1][..]));
        assert_eq!(
            public_key_from_pem(RSA_PKCS1_PEM),
            public_key_from_pem(RSA_PEM)
        );
        let private = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----";
        assert!(public_key_from_pem(private)
            .unwrap_err()
            .contains("private key"));
        assert!(public_key_from_pem("not a pem").is_err());
        let cut = &RSA_PEM[..RSA_PEM.len() - 60];
        assert!(public_key_from_pem(cut).is_err());
    }

    #[test]
    fn introspector_keys_pin_their_algorithm() {
        let ok = json!([
            {"pub": RSA_PEM, "kty": "RSA", "alg": "RS256", "format": "PEM"},
            {"pub": RSA_PEM, "kty": "RSA", "alg": "RS384", "format": "PEM"},
            {"pub": EC_PEM, "kty": "EC", "alg": "ES256", "format": "PEM"},
            {"k": "a-shared-secret-of-at-least-32-bytes", "kty": "OCT", "alg": "HS256", "format": "plain"}
        ]);
        let keys = from_introspector_keys(&ok).unwrap();
        let algs: Vec<SigAlg> = keys.iter().map(|k| k.alg).collect();
        assert_eq!(
            algs,
            [SigAlg::Rs256, SigAlg::Rs384, SigAlg::Es256, SigAlg::Hs256]
        );
        for (bad, path) in [
            (
                json!([{"pub": RSA_PEM, "kty": "RSA", "alg": "HS256"}]),
                "jwt.keys.0.alg",
            ),
            (
                json!([{"pub": RSA_PEM, "kty": "RSA", "alg": "ES256"}]),
                "jwt.keys.0.alg",
            ),
            (json!([{"pub": EC_PEM, "kty": "RSA"}]), "jwt.keys.0.kty"),
            (json!([{"pub": EC_PEM, "alg": "RS256"}]), "jwt.keys.0.alg"),
            (
                json!([{"k": "a-shared-secret-of-at-least-32-bytes", "alg": "RS256"}]),
                "jwt.keys.0.alg",
            ),
            (
                json!([{"k": "very-secret", "kty": "OCT", "alg": "HS256"}]),
                "jwt.keys.0.k",
            ),
            (
                json!([{"k": "a-shared-secret-of-at-least-32-bytes", "pub": EC_PEM}]),
                "jwt.keys.0",
            ),
            (json!([]), "jwt.keys"),
        ] {
            assert_eq!(from_introspector_keys(&bad).unwrap_err().0, path, "{bad}");
        }
    }
}
