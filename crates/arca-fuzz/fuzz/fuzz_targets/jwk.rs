//! libFuzzer over [`arca_fuzz::jwk`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::jwk(data));
