//! libFuzzer over [`arca_fuzz::raft_answers`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_fuzz::raft_answers(data));
