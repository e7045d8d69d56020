//! libFuzzer over [`arca_fuzz::unseal_share`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::unseal_share(data));
