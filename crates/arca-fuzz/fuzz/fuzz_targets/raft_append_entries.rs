//! libFuzzer over [`arca_fuzz::raft_append_entries`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::raft_append_entries(data));
