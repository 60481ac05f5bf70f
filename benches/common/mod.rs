//! Helpers shared by the model benches.
#![allow(dead_code)] // not every bench uses each

/// Pins libtorch to `OMP_NUM_THREADS` threads (default 1) and returns the count.
pub fn libtorch_threads() -> i32 {
    let threads = std::env::var("OMP_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    tch::set_num_threads(threads);
    threads
}

/// The `p`-quantile (0–1) of `xs`, sorting it in place.
pub fn pct(xs: &mut [f64], p: f64) -> f64 {
    augur_operators::quantile::quantile(xs, p, augur_operators::quantile::Rank::Floor)
}
