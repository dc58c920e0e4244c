//! [`Crypto`] through WebCrypto `crypto.subtle`: the runtime's native code, several times faster
//! than pure Rust compiled to wasm (Ed25519 verify ~80 us vs ~384 us, PBKDF2 100k ~15 ms vs
//! ~145 ms, measured in local workerd). Imported keys are cached per isolate by key id.
//!
//! It reaches `crypto` through the global object, so the same code serves the Worker
//! (`WorkerGlobalScope`) and a browser page (`Window`).

use crate::platform::{BackendError, Crypto, PrivateKey, PublicKey, SigAlg};
use async_trait::async_trait;
use js_sys::{Array, ArrayBuffer, Object, Reflect, Uint8Array};
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Crypto as WebCryptoApi, CryptoKey, SubtleCrypto};

thread_local! {
    static KEYS: RefCell<HashMap<String, CryptoKey>> = RefCell::new(HashMap::new());
    /// `crypto.subtle` of this isolate (or page), looked up once.
    static SUBTLE: RefCell<Option<SubtleCrypto>> = const { RefCell::new(None) };
    /// The `sign` algorithm parameter of each algorithm, built once: signing runs on every
    /// token request.
    static SIGN_ALGS: RefCell<Vec<(SigAlg, Object)>> = const { RefCell::new(Vec::new()) };
}

/// Most imported keys kept per isolate.
const MAX_KEYS: usize = 256;

#[derive(Debug, Default, Clone, Copy)]
pub struct WebCrypto;

fn err(what: &str, e: JsValue) -> BackendError {
    BackendError(format!(
        "webcrypto {what}: {}",
        e.as_string().unwrap_or_else(|| format!("{e:?}"))
    ))
}

fn subtle() -> Result<SubtleCrypto, BackendError> {
    if let Some(s) = SUBTLE.with(|c| c.borrow().clone()) {
        return Ok(s);
    }
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(|e| err("crypto", e))?;
    if crypto.is_undefined() {
        return Err(BackendError(
            "webcrypto: no crypto object in this runtime".into(),
        ));
    }
    let subtle = crypto.unchecked_into::<WebCryptoApi>().subtle();
    SUBTLE.with(|c| *c.borrow_mut() = Some(subtle.clone()));
    Ok(subtle)
}

fn obj(pairs: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in pairs {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o
}

fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}

fn b64url(bytes: &[u8]) -> JsValue {
    JsValue::from_str(&crate::http_util::b64url(bytes))
}

fn usages(list: &[&str]) -> JsValue {
    list.iter()
        .map(|u| JsValue::from_str(u))
        .collect::<Array>()
        .into()
}

fn import_algorithm(alg: SigAlg) -> Object {
    match alg {
        SigAlg::EdDsa => obj(&[("name", s("Ed25519"))]),
        SigAlg::Es256 => obj(&[("name", s("ECDSA")), ("namedCurve", s("P-256"))]),
        SigAlg::Rs256 => obj(&[("name", s("RSASSA-PKCS1-v1_5")), ("hash", s("SHA-256"))]),
        SigAlg::Rs384 => obj(&[("name", s("RSASSA-PKCS1-v1_5")), ("hash", s("SHA-384"))]),
        SigAlg::Es384 => obj(&[("name", s("ECDSA")), ("namedCurve", s("P-384"))]),
        SigAlg::Hs256 => obj(&[("name", s("HMAC")), ("hash", s("SHA-256"))]),
    }
}

/// [`sign_algorithm`], built once per isolate.
fn cached_sign_algorithm(alg: SigAlg) -> Object {
    SIGN_ALGS.with(|m| {
        let mut m = m.borrow_mut();
        if let Some((_, o)) = m.iter().find(|(a, _)| *a == alg) {
            return o.clone();
        }
        let o = sign_algorithm(alg);
        m.push((alg, o.clone()));
        o
    })
}

fn sign_algorithm(alg: SigAlg) -> Object {
    match alg {
        SigAlg::EdDsa => obj(&[("name", s("Ed25519"))]),
        SigAlg::Es256 => obj(&[("name", s("ECDSA")), ("hash", s("SHA-256"))]),
        SigAlg::Rs256 | SigAlg::Rs384 => obj(&[("name", s("RSASSA-PKCS1-v1_5"))]),
        SigAlg::Es384 => obj(&[("name", s("ECDSA")), ("hash", s("SHA-384"))]),
        SigAlg::Hs256 => obj(&[("name", s("HMAC"))]),
    }
}

async fn cached_key(
    cache_key: String,
    import: impl FnOnce() -> Result<js_sys::Promise, JsValue>,
) -> Result<CryptoKey, BackendError> {
    if let Some(k) = KEYS.with(|m| m.borrow().get(&cache_key).cloned()) {
        return Ok(k);
    }
    let promise = import().map_err(|e| err("importKey", e))?;
    let key: CryptoKey = JsFuture::from(promise)
        .await
        .map_err(|e| err("importKey", e))?
        .unchecked_into();
    KEYS.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= MAX_KEYS {
            m.clear();
        }
        m.insert(cache_key, key.clone());
    });
    Ok(key)
}

fn to_bytes(v: JsValue) -> Vec<u8> {
    Uint8Array::new(&v.unchecked_into::<ArrayBuffer>()).to_vec()
}

/// An uncompressed SEC1 point, the `raw` import format of ECDSA public keys.
fn sec1(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + x.len() + y.len());
    v.push(4u8);
    v.extend_from_slice(x);
    v.extend_from_slice(y);
    v
}

/// `crypto.subtle.verify`; a signature of the wrong length makes some runtimes throw rather
/// than return false, which counts as a bad signature.
async fn subtle_verify(
    subtle: &SubtleCrypto,
    alg: SigAlg,
    key: &CryptoKey,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, BackendError> {
    let ok = JsFuture::from(
        subtle
            .verify_with_object_and_js_u8_array_and_js_u8_array(
                &sign_algorithm(alg),
                key,
                &Uint8Array::from(signature),
                &Uint8Array::from(message),
            )
            .map_err(|e| err("verify", e))?,
    )
    .await
    .unwrap_or(JsValue::FALSE);
    Ok(ok.as_bool().unwrap_or(false))
}

impl WebCrypto {
    async fn verify_rsa(
        &self,
        alg: SigAlg,
        key_id: &str,
        n: &[u8],
        e: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, BackendError> {
        if !matches!(alg, SigAlg::Rs256 | SigAlg::Rs384) {
            return Ok(false);
        }
        let subtle = subtle()?;
        let jwk = obj(&[("kty", s("RSA")), ("n", b64url(n)), ("e", b64url(e))]);
        let cache_key = format!(
            "rsa/{}/{key_id}/{}",
            alg.jws_name(),
            crate::http_util::b64url(n)
        );
        let ck = cached_key(cache_key, || {
            subtle.import_key_with_object(
                "jwk",
                &jwk,
                &import_algorithm(alg),
                false,
                &usages(&["verify"]),
            )
        })
        .await?;
        subtle_verify(&subtle, alg, &ck, message, signature).await
    }
}

#[async_trait(?Send)]
impl Crypto for WebCrypto {
    async fn pbkdf2_sha256(
        &self,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<[u8; 32], BackendError> {
        let subtle = subtle()?;
        let raw = Uint8Array::from(password);
        let key: CryptoKey = JsFuture::from(
            subtle
                .import_key_with_str("raw", &raw, "PBKDF2", false, &usages(&["deriveBits"]))
                .map_err(|e| err("importKey", e))?,
        )
        .await
        .map_err(|e| err("importKey", e))?
        .unchecked_into();
        let params = obj(&[
            ("name", s("PBKDF2")),
            ("hash", s("SHA-256")),
            ("salt", Uint8Array::from(salt).into()),
            ("iterations", JsValue::from_f64(iterations as f64)),
        ]);
        let bits = JsFuture::from(
            subtle
                .derive_bits_with_object(&params, &key, 256)
                .map_err(|e| err("deriveBits", e))?,
        )
        .await
        .map_err(|e| err("deriveBits", e))?;
        to_bytes(bits)
            .try_into()
            .map_err(|_| BackendError("webcrypto deriveBits: wrong length".into()))
    }

    async fn sign(
        &self,
        alg: SigAlg,
        key_id: &str,
        key: &PrivateKey,
        message: &[u8],
    ) -> Result<Vec<u8>, BackendError> {
        let subtle = subtle()?;
        // The JWK is built only when the key is not imported yet (once per isolate).
        let ck = cached_key(format!("sign/{key_id}"), || {
            let jwk = match key {
                PrivateKey::Ed25519 { seed, public } => obj(&[
                    ("kty", s("OKP")),
                    ("crv", s("Ed25519")),
                    ("d", b64url(seed)),
                    ("x", b64url(public)),
                ]),
                PrivateKey::P256 { d, x, y } => obj(&[
                    ("kty", s("EC")),
                    ("crv", s("P-256")),
                    ("d", b64url(d)),
                    ("x", b64url(x)),
                    ("y", b64url(y)),
                ]),
            };
            subtle.import_key_with_object(
                "jwk",
                &jwk,
                &import_algorithm(alg),
                false,
                &usages(&["sign"]),
            )
        })
        .await?;
        // The message is handed over as a view of wasm memory, not copied into a new array:
        // `sign` takes a copy of its data before it returns (WebCrypto, "get a copy of the
        // bytes held by the data parameter"), and nothing runs in between.
        let sig = JsFuture::from(
            subtle
                .sign_with_object_and_u8_array(&cached_sign_algorithm(alg), &ck, message)
                .map_err(|e| err("sign", e))?,
        )
        .await
        .map_err(|e| err("sign", e))?;
        Ok(to_bytes(sig))
    }

    async fn verify(
        &self,
        alg: SigAlg,
        key_id: &str,
        key: &PublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, BackendError> {
        let raw: Vec<u8> = match key {
            PublicKey::Ed25519(x) => x.to_vec(),
            PublicKey::P256 { x, y } => sec1(x, y),
            PublicKey::P384 { x, y } => sec1(x, y),
            // HMAC is as fast in Rust as anywhere, and needs no key import.
            PublicKey::Hmac(secret) => {
                return Ok(alg == SigAlg::Hs256
                    && crate::crypto::hmac_sha256_verify(secret, message, signature))
            }
            PublicKey::Rsa { n, e } => {
                return self.verify_rsa(alg, key_id, n, e, message, signature).await
            }
        };
        let subtle = subtle()?;
        // The cache key includes the key bytes: a kid reused for another key never hits.
        let cache_key = format!("verify/{key_id}/{}", crate::http_util::b64url(&raw));
        let raw_js = Uint8Array::from(raw.as_slice());
        let ck = cached_key(cache_key, || {
            subtle.import_key_with_object(
                "raw",
                &raw_js,
                &import_algorithm(alg),
                false,
                &usages(&["verify"]),
            )
        })
        .await?;
        subtle_verify(&subtle, alg, &ck, message, signature).await
    }
}
