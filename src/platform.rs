//! The outside world, as the pure core sees it (DESIGN.md rule 1).
//!
//! Time, randomness, storage and signatures come in through these traits. Native tests give the
//! core a memory store, a fixed clock and seeded randomness; the Worker (`src/worker/`) gives it
//! Workers KV, `Date.now()`, `crypto.getRandomValues` and WebCrypto `crypto.subtle`.

use async_trait::async_trait;
use std::fmt;

/// Seconds since the Unix epoch.
pub trait Clock {
    fn now(&self) -> i64;
}

/// A source of cryptographically secure random bytes.
pub trait Random {
    fn fill(&self, buf: &mut [u8]);
}

/// Why a storage or crypto backend could not answer. Always maps to 503 on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError(pub String);

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

/// A key-value namespace with the shape of Workers KV: string keys, string values, prefix listing.
/// Eventually consistent in production; nothing in the core relies on compare-and-set here.
#[async_trait(?Send)]
pub trait KvStore {
    async fn get(&self, key: &str) -> Result<Option<String>, BackendError>;
    async fn put(&self, key: &str, value: &str) -> Result<(), BackendError>;
    async fn delete(&self, key: &str) -> Result<(), BackendError>;
    /// All keys that start with `prefix`, in lexicographic order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BackendError>;
}

/// Signature algorithms we sign and verify our own tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigAlg {
    /// Ed25519 (RFC 8037).
    EdDsa,
    /// ECDSA P-256 with SHA-256 (RFC 7518 section 3.4).
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 section 3.3); verification only, for tokens of
    /// external issuers.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384: SMART Backend Services client assertions.
    Rs384,
    /// ECDSA P-384 with SHA-384: SMART Backend Services client assertions.
    Es384,
    /// HMAC with SHA-256 (RFC 7518 section 3.2); verification only, with a TokenIntrospector's
    /// shared secret.
    Hs256,
}

impl SigAlg {
    pub fn jws_name(self) -> &'static str {
        match self {
            SigAlg::EdDsa => "EdDSA",
            SigAlg::Es256 => "ES256",
            SigAlg::Rs256 => "RS256",
            SigAlg::Rs384 => "RS384",
            SigAlg::Es384 => "ES384",
            SigAlg::Hs256 => "HS256",
        }
    }

    /// Does a JWS `alg` name this algorithm? Its registered name, or for Ed25519 also the
    /// fully-specified `Ed25519` of RFC 9864 (which oauth4webapi and jose send for OKP keys).
    pub fn named(self, alg: &str) -> bool {
        alg == self.jws_name() || (self == SigAlg::EdDsa && alg == "Ed25519")
    }
}

/// Public key material, as raw bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum PublicKey {
    /// 32-byte Ed25519 public key.
    Ed25519([u8; 32]),
    /// Uncompressed P-256 point coordinates.
    P256 { x: [u8; 32], y: [u8; 32] },
    /// Uncompressed P-384 point coordinates.
    P384 { x: [u8; 48], y: [u8; 48] },
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// A shared HMAC secret (a "verifying key" only in the sense of JWS).
    Hmac(Vec<u8>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKey::Ed25519(_) => f.write_str("PublicKey::Ed25519(..)"),
            PublicKey::P256 { .. } => f.write_str("PublicKey::P256(..)"),
            PublicKey::Rsa { .. } => f.write_str("PublicKey::Rsa(..)"),
            PublicKey::P384 { .. } => f.write_str("PublicKey::P384(..)"),
            PublicKey::Hmac(_) => f.write_str("PublicKey::Hmac(<redacted>)"),
        }
    }
}

/// Private key material. Debug never prints it.
#[derive(Clone)]
pub enum PrivateKey {
    /// 32-byte Ed25519 seed (the JWK `d`).
    Ed25519 { seed: [u8; 32], public: [u8; 32] },
    /// P-256 scalar (the JWK `d`) and its public point.
    P256 {
        d: [u8; 32],
        x: [u8; 32],
        y: [u8; 32],
    },
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// Signatures and the password KDF. Async because WebCrypto is: in the Worker these run natively
/// in the runtime (Ed25519 verify ~80 us, PBKDF2 100k ~15 ms) where pure Rust in wasm is 5-10x slower.
#[async_trait(?Send)]
pub trait Crypto {
    /// PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2), 32-byte output.
    async fn pbkdf2_sha256(
        &self,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<[u8; 32], BackendError>;

    /// A JWS signature (RFC 7515) over `message`: 64 bytes for both EdDSA and ES256 (r || s).
    /// `key_id` names the key so an implementation may cache the imported key.
    async fn sign(
        &self,
        alg: SigAlg,
        key_id: &str,
        key: &PrivateKey,
        message: &[u8],
    ) -> Result<Vec<u8>, BackendError>;

    /// Checks a JWS signature. `Ok(false)` for a wrong signature; `Err` only when the backend failed.
    async fn verify(
        &self,
        alg: SigAlg,
        key_id: &str,
        key: &PublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, BackendError>;
}

/// The outcome of [`StateStore::cas`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cas {
    /// The value was as expected and has been replaced.
    Swapped,
    /// The value was not as expected; nothing changed. Carries the current value (None: absent
    /// or expired).
    Conflict(Option<String>),
}

/// Strongly consistent state that must change atomically: authorization codes (single use),
/// refresh-token families (rotation), login sessions, revocations. In the Worker this is a
/// SQLite-backed Durable Object; natively, memory.
///
/// Every operation is atomic on its key: two concurrent `cas` calls on one key with the same
/// `expected` value give exactly one `Swapped`. Records expire at `expires_at` (Unix seconds):
/// an expired record reads as absent.
#[async_trait(?Send)]
pub trait StateStore {
    async fn get(&self, key: &str) -> Result<Option<String>, BackendError>;

    /// Compare-and-swap: when the current value equals `expected` (None: absent), replace it by
    /// `new` (None: delete) with a new expiry.
    async fn cas(
        &self,
        key: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expires_at: i64,
    ) -> Result<Cas, BackendError>;

    /// Records that the access token `jti` is revoked until `until` (its `exp` plus the clock
    /// leeway), in every revocation feed; answers only once every feed has it (a retry after an
    /// error is harmless). O(log n) per feed in the number of live revocations.
    async fn revoke_jti(&self, jti: &str, until: i64) -> Result<(), BackendError>;

    /// [`StateStore::revoke_jti`] for several tokens at once (one call per feed).
    async fn revoke_many(&self, items: &[(String, i64)]) -> Result<(), BackendError> {
        for (jti, until) in items {
            self.revoke_jti(jti, *until).await?;
        }
        Ok(())
    }

    /// At most `limit` revocations of `feed` newer than `since` (a cursor from an earlier call
    /// on the same feed; 0 for all), oldest first, as `(jti, until)`, and the cursor to pass
    /// next time (the position of the last one returned). Lets each isolate keep a copy and
    /// poll it, page by page, instead of asking on every request. Revocations past their
    /// `until` that are still stored are returned too: a page shorter than `limit` must mean
    /// the end of the feed.
    async fn revocations_since(
        &self,
        feed: Feed,
        since: u64,
        limit: u32,
    ) -> Result<(u64, Vec<(String, i64)>), BackendError>;

    /// Until when `jti` is revoked according to `feed`, if it is (a point lookup, for an
    /// isolate whose copy of that feed has not caught up yet).
    async fn revoked_until(&self, feed: Feed, jti: &str) -> Result<Option<i64>, BackendError>;

    /// One atomic throttle operation (see [`crate::state::throttle`]): reads the records of
    /// the op's keys, decides with [`crate::state::throttle::apply`] and writes them back,
    /// with nothing in between, so that concurrent attempts are counted one by one.
    async fn throttle(
        &self,
        op: &crate::state::throttle::Op,
    ) -> Result<crate::state::throttle::Answer, BackendError>;
}

/// A revocation feed an isolate reads (docs/reference.md "Storage", docs/scale.md "Revocation feeds").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Replica `i` of `REVOCATION_FEEDS` (the object `feed-{i}`): every revocation is written
    /// to each, an isolate polls one.
    Replica(u16),
    /// The single feed of versions before the replicas (the object `auth-state`): read once
    /// to its end by each isolate, for the revocations an earlier version wrote there.
    Old,
}

/// Outbound HTTP for fetching JWKS and calling introspection endpoints.
#[async_trait(?Send)]
pub trait HttpClient {
    /// Sends a request; returns the status and body. `Err` when the host cannot be reached or
    /// does not answer in time.
    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<(u16, String), BackendError>;

    /// A GET for a document named by someone else (a Client ID Metadata Document, a
    /// self-registered client's JWKS): redirects are NOT followed (a 3xx is answered as it is),
    /// and at most `max_bytes` of the body are read (`body: None` past that). `Err` when the
    /// host cannot be reached or does not answer in time.
    async fn get_limited(
        &self,
        url: &str,
        accept: &str,
        max_bytes: usize,
    ) -> Result<Limited, BackendError>;
}

/// The answer of [`HttpClient::get_limited`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limited {
    pub status: u16,
    /// `content-type`, `cache-control` (lowercase names), when the answer had them.
    pub headers: Vec<(String, String)>,
    /// The body; None when it was larger than the limit (then not read to its end).
    pub body: Option<Vec<u8>>,
}

impl Limited {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The outcome of [`CatalogStore::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogWrite {
    /// Applied; the type's catalog version after it (the bundle that carries it is at least
    /// this version).
    Done(u64),
    /// The stored document was not `expected`; nothing changed. Carries the current one.
    Conflict(Option<String>),
    /// The catalog is still importing this type from the old per-id KV records: retry shortly.
    Importing,
    /// Refused: the type's documents would exceed [`CATALOG_MAX_BYTES`] together, more than one
    /// KV bundle record holds; nothing changed.
    TooLarge,
}

/// Most bytes the documents of one bundled type (all but Client, whose bundle holds only the
/// CORS origins) may take together: KV holds at most 25 MiB in one value, and a bundle that
/// could not be published would leave every other isolate on the old one for good.
pub const CATALOG_MAX_BYTES: usize = 20 * 1024 * 1024;

/// The authority for the resource types loaded in bulk (AccessPolicy, TokenIntrospector, Role,
/// Scope, Client; docs/reference.md "Storage"): strongly consistent and serialised, one writer per type.
/// It publishes one bundle record per type to KV (`bundle/{Type}`), which the hot path reads
/// (src/store/mod.rs). In the Worker, a Durable Object per type (src/worker/catalog.rs);
/// natively, memory (src/store/memory.rs `MemoryCatalog`).
#[async_trait(?Send)]
pub trait CatalogStore {
    /// Every document of `rt` (raw JSON, ordered by id) and the type's version; `None` while
    /// the type is still being imported from the old per-id KV records.
    async fn list(&self, rt: &str) -> Result<Option<(u64, Vec<String>)>, BackendError>;
    /// One document (`Found(None)`: absent).
    async fn get(&self, rt: &str, id: &str) -> Result<CatalogGet, BackendError>;
    /// Compare-and-set of one document: when the stored one equals `expected` (None: absent),
    /// replace it by `new` (None: delete).
    async fn write(
        &self,
        rt: &str,
        id: &str,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> Result<CatalogWrite, BackendError>;
}

/// The answer of [`CatalogStore::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogGet {
    Found(Option<String>),
    /// Still importing this type (see [`CatalogWrite::Importing`]).
    Importing,
}
