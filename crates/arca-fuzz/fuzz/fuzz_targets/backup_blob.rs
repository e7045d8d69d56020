//! libFuzzer over [`arca_fuzz::backup_blob`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::backup_blob(data));
