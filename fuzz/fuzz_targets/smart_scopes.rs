//! cargo-fuzz target `smart_scopes`: see `edge_authorizer_fuzz::smart_scopes` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_authorizer_fuzz::smart_scopes(data));
