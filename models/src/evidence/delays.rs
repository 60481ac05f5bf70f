//! How often calls are delayed, against how often the application's calls are delayed
//! normally.
//!
//! A call's gap (its client time less its server time) has a heavy tail in real
//! deployments: a lost segment's retransmission (Linux waits at least 200 ms), Nagle's
//! algorithm meeting a delayed ACK, a connection being set up, a pause of the caller. On a
//! quiet edge the normal holds a handful of calls, so the spread of their mean says nothing
//! of that tail, and one such call is a move of z 100 or more. The tail is the
//! application's, though, not the edge's: pooled over every edge, the normal shows how often
//! a call's gap reaches each of [`GAP_LEVELS_MS`]. A delay of a service's calls is real when
//! more of its calls reached some level than that rate explains (a Poisson tail, the levels
//! tested together by Bonferroni's bound).

use augur_operators::GAP_LEVELS_MS;
use statrs::distribution::{ContinuousCDF, DiscreteCDF, Normal, Poisson};

use super::Range;

/// Levels plus one: the calls counted, then the calls at or above each level.
pub(super) const LADDER: usize = GAP_LEVELS_MS.len() + 1;

/// The z (standard normal deviate of the same upper-tail probability) of the most unlikely
/// count of delayed calls on `edges` in `after`, given the rate at which the calls of every
/// edge of `normal` reached the same level; levels reached by fewer than `min_calls` calls
/// are not tested. `None` when `normal` counted no calls at the levels (a learned normal
/// saved before they were kept) or `edges` had none in `after`.
pub(super) fn delayed_calls_z<'a>(
    normal: &Range,
    after: &Range,
    edges: impl IntoIterator<Item = &'a (String, String)>,
    min_calls: f64,
) -> Option<f64> {
    let mut normal_counts = [0.0; LADDER];
    for counts in normal.gap_over.values() {
        for (total, c) in normal_counts.iter_mut().zip(counts) {
            *total += c;
        }
    }
    let mut after_counts = [0.0; LADDER];
    for edge in edges {
        if let Some(counts) = after.gap_over.get(edge) {
            for (total, c) in after_counts.iter_mut().zip(counts) {
                *total += c;
            }
        }
    }
    let (normal_calls, calls) = (normal_counts[0], after_counts[0]);
    if normal_calls <= 0.0 || calls <= 0.0 {
        return None;
    }
    let p = (1..LADDER)
        .filter(|&level| after_counts[level] >= min_calls)
        .map(|level| {
            // The rate with one delayed call added and one on time (a level the normal never
            // reached is not taken as impossible).
            let rate = (normal_counts[level] + 1.0) / (normal_calls + 2.0);
            poisson_at_least(after_counts[level], calls * rate)
        })
        .fold(1.0_f64, f64::min);
    Some(upper_tail_z((p * GAP_LEVELS_MS.len() as f64).min(0.5)))
}

/// P(X ≥ k) for X ~ Poisson(λ).
fn poisson_at_least(k: f64, lambda: f64) -> f64 {
    let k = k.max(0.0).round();
    if k == 0.0 {
        return 1.0;
    }
    match Poisson::new(lambda) {
        // P(X ≥ k) = P(X > k - 1).
        Ok(p) => p.sf(k as u64 - 1),
        // λ = 0: no delay is expected at all.
        Err(_) => 0.0,
    }
}

/// The z whose upper-tail probability under the standard normal is `p` (0 < p ≤ 0.5).
fn upper_tail_z(p: f64) -> f64 {
    // The lower tail's quantile, negated: 1 - p would round away a small p.
    Normal::standard().inverse_cdf(p.clamp(1e-300, 0.5)).abs()
}

#[cfg(test)]
mod tests {
    use super::{poisson_at_least, upper_tail_z};

    #[test]
    fn poisson_tails_match_their_sums() {
        // P(X ≥ 2 | λ = 0.5) = 1 - e^-0.5 (1 + 0.5).
        let exact = 1.0 - (-0.5_f64).exp() * 1.5;
        assert!((poisson_at_least(2.0, 0.5) - exact).abs() < 1e-10);
        // P(X ≥ 3 | λ = 0.01) ≈ λ³/6 e^-λ (next terms a hundredth of it).
        let approx = 0.01_f64.powi(3) / 6.0 * (-0.01_f64).exp();
        assert!((poisson_at_least(3.0, 0.01) / approx - 1.0).abs() < 0.01);
        assert_eq!(poisson_at_least(0.0, 3.0), 1.0);
        assert!((poisson_at_least(1.0, 3.0) - (1.0 - (-3.0_f64).exp())).abs() < 1e-10);
    }

    #[test]
    fn upper_tail_z_inverts_the_normal_tail() {
        for (p, z) in [
            (0.5, 0.0),
            (0.158_655_25, 1.0),
            (0.001_349_9, 3.0),
            (3.167e-5, 4.0),
        ] {
            assert!(
                (upper_tail_z(p) - z).abs() < 1e-3,
                "{p}: {}",
                upper_tail_z(p)
            );
        }
    }
}
