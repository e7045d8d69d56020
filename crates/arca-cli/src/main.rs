//! arca-cli
fn main() {}
