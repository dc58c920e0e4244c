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
