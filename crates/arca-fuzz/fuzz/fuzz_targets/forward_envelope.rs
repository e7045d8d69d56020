//! libFuzzer over [`arca_fuzz::forward_envelope`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::forward_envelope(data));
