//! The `mcplane` binary: the composition root.

fn main() {}
