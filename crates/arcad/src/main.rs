//! arcad
fn main() {}
