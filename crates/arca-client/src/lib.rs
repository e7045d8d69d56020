//! arca-client
