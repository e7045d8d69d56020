//! libFuzzer over [`arca_fuzz::join_token`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::join_token(data));
