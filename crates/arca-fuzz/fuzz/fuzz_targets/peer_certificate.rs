//! libFuzzer over [`arca_fuzz::peer_certificate`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::peer_certificate(data));
