//! arca-testkit
