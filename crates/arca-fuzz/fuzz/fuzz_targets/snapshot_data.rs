//! libFuzzer over [`arca_fuzz::snapshot_data`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::snapshot_data(data));
