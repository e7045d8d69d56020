//! libFuzzer over [`arca_fuzz::pkcs8`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::pkcs8(data));
