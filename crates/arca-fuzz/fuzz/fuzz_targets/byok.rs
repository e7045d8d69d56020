//! libFuzzer over [`arca_fuzz::byok`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::byok(data));
