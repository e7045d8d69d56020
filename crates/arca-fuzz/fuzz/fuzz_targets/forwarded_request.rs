//! libFuzzer over [`arca_fuzz::forwarded_request`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::forwarded_request(data));
