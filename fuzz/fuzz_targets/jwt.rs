//! cargo-fuzz target `jwt`: see `edge_authorizer_fuzz::jwt` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_authorizer_fuzz::jwt(data));
