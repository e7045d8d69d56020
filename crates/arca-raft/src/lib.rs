//! arca-raft
