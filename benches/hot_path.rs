//! Placeholder until the benchmark issue lands its micro-benchmarks here.
fn main() {}
