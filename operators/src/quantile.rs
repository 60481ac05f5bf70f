//! Quantiles of a sample: the one place that picks a rank. Each caller names its rank rule,
//! because figures computed with one rule must stay comparable with their history.

/// Which of n sorted values the q-quantile is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rank {
    /// Index ⌈q·n⌉ − 1 (at least the first): the smallest value with at least q·n values at
    /// or below it, the classic nearest-rank percentile.
    Nearest,
    /// Index round(q·(n − 1)).
    Rounded,
    /// Index ⌊q·n⌋ (at most the last); for q = ½, the upper median.
    Floor,
}

/// The q-quantile (0..=1) of `sorted` (ascending); `None` when it is empty.
pub fn quantile_sorted<T: Copy>(sorted: &[T], q: f64, rank: Rank) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let index = match rank {
        Rank::Nearest => (q * n as f64).ceil().max(1.0) as usize - 1,
        Rank::Rounded => (q * (n - 1) as f64).round() as usize,
        Rank::Floor => (n as f64 * q) as usize,
    };
    Some(sorted[index.min(n - 1)])
}

/// The q-quantile (0..=1) of `xs` in any order; 0 when it is empty.
pub fn quantile(xs: &[f64], q: f64, rank: Rank) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile_sorted(&sorted, q, rank).unwrap_or(0.0)
}

/// The median of `xs` in any order, the mean of the two middle values when their number
/// is even; 0 when it is empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_rules() {
        let xs = [5.0, 1.0, 4.0, 2.0, 3.0, 6.0];
        assert_eq!(quantile(&xs, 0.5, Rank::Nearest), 3.0);
        assert_eq!(quantile(&xs, 0.99, Rank::Nearest), 6.0);
        assert_eq!(quantile(&xs, 0.0, Rank::Nearest), 1.0);
        assert_eq!(quantile(&xs, 0.5, Rank::Rounded), 4.0);
        assert_eq!(quantile(&xs, 0.5, Rank::Floor), 4.0);
        assert_eq!(quantile(&xs, 1.0, Rank::Floor), 6.0);
        assert_eq!(median(&xs), 3.5);
        assert_eq!(median(&[2.0, 9.0, 1.0]), 2.0);
        assert_eq!(quantile(&[], 0.5, Rank::Nearest), 0.0);
        assert_eq!(median(&[]), 0.0);
    }
}
