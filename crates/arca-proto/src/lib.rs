//! arca-proto
