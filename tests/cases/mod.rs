//! How many cases each property test runs: its own count in `make test`, times
//! `SCALEWISE_FUZZ_SCALE` in `make fuzz` (the failures found are kept in the
//! `*.proptest-regressions` files next to each test and replayed first on every run).

/// `n`, times `SCALEWISE_FUZZ_SCALE` when it is set to a positive whole number.
pub fn scaled(n: u32) -> u32 {
    let scale = std::env::var("SCALEWISE_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(1);
    n.saturating_mul(scale)
}
