//! cargo-fuzz target `policy`: see `edge_authorizer_fuzz::policy` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_authorizer_fuzz::policy(data));
