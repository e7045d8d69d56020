//! libFuzzer over [`arca_fuzz::raft_log_entry`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::raft_log_entry(data));
