//! libFuzzer over [`arca_fuzz::raft_snapshot_header`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::raft_snapshot_header(data));
