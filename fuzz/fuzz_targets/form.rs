//! cargo-fuzz target `form`: see `edge_authorizer_fuzz::form` (fuzz/src/lib.rs) for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge_authorizer_fuzz::form(data));
