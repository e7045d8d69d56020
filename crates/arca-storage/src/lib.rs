//! arca-storage
