//! # edge-authorizer
//!
//! An OAuth 2.0 / OpenID Connect / SMART on FHIR authorization server and request authorizer that
//! runs as a Cloudflare Worker, modelled on the auth module of the Aidbox FHIR server.
//!
//! The core is pure Rust and runs natively under `cargo test`: time, randomness, storage and
//! crypto come in through the traits of [`platform`]. Only `src/worker/` (feature `worker`)
//! touches the `worker` crate. [`app::App::handle`] is the whole service: the router, driven by
//! the route table [`app::ROUTES`]. Imports run one way: the router calls the handlers, which take
//! their context ([`context::App`]) from [`context`], below them.

pub mod admin;
pub mod app;
pub mod authn;
pub mod authz;
pub mod config;
pub mod context;
pub mod cors;
pub mod crypto;
pub mod debug;
pub mod demo;
pub mod error;
pub mod external;
pub mod html;
pub mod http_util;
pub mod jwt;
pub mod model;
pub mod oauth;
pub mod platform;
pub mod policy;
pub mod resource;
pub mod secret;
pub mod sessions;
pub mod smart;
pub mod state;
pub mod store;
/// Test doubles (fixed clock, seeded randomness, in-memory stores); native only.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod token_cache;

/// WebCrypto for the wasm builds (the Worker and the browser package).
#[cfg(all(target_arch = "wasm32", any(feature = "worker", feature = "browser")))]
pub mod webcrypto;

/// The browser verifier package (`Verifier`, PKCE helpers) for SPAs, through wasm-bindgen.
#[cfg(all(target_arch = "wasm32", feature = "browser"))]
pub mod browser;

#[cfg(all(feature = "worker", target_arch = "wasm32"))]
mod worker;
