//! Pooled means over windows and the significance of their moves.

use serde::{Deserialize, Serialize};

use super::{Evidence, Signal};

/// A per-unit mean pooled over windows (`sum / n`), with the spread of the windows' own
/// means kept as a running summary (count, mean, sum of squared deviations), so pooling two
/// ranges — a learned normal of days into the minutes before — costs the same as one window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Pooled {
    sum: f64,
    n: f64,
    /// Windows with units, the mean of their means, and the sum of squared deviations.
    windows: f64,
    mean_of_means: f64,
    m2: f64,
    /// The (sum, units) of the window with the highest mean: a move has to stand without
    /// it, so one slow request in a quiet window is not a move.
    #[serde(default)]
    peak: (f64, f64),
}

impl Pooled {
    /// One window's total over `n` units (requests, calls; 1 for a gauge).
    pub(super) fn add(&mut self, sum: f64, n: f64) {
        if n > 0.0 {
            self.sum += sum;
            self.n += n;
            // Welford's update.
            let x = sum / n;
            self.windows += 1.0;
            let delta = x - self.mean_of_means;
            self.mean_of_means += delta / self.windows;
            self.m2 += delta * (x - self.mean_of_means);
            if self.peak.1 == 0.0 || x > self.peak.0 / self.peak.1 {
                self.peak = (sum, n);
            }
        }
    }

    /// Pools `other`'s windows into this one.
    pub(super) fn absorb(&mut self, other: &Pooled) {
        self.sum += other.sum;
        self.n += other.n;
        // Chan et al.'s merge of two summaries.
        let windows = self.windows + other.windows;
        if windows > 0.0 {
            let delta = other.mean_of_means - self.mean_of_means;
            self.m2 += other.m2 + delta * delta * self.windows * other.windows / windows;
            self.mean_of_means += delta * other.windows / windows;
            self.windows = windows;
        }
        if other.peak.1 > 0.0
            && (self.peak.1 == 0.0 || other.peak.0 / other.peak.1 > self.peak.0 / self.peak.1)
        {
            self.peak = other.peak;
        }
    }

    /// The mean and window count without the peak window (`None` with fewer than two).
    fn without_peak(&self) -> Option<(f64, f64)> {
        let n = self.n - self.peak.1;
        (self.windows >= 2.0 && n > 0.0).then(|| ((self.sum - self.peak.0) / n, self.windows - 1.0))
    }

    pub(super) fn mean(&self) -> f64 {
        if self.n > 0.0 { self.sum / self.n } else { 0.0 }
    }

    /// Units pooled (requests, calls).
    pub(super) fn units(&self) -> f64 {
        self.n
    }

    pub(super) fn windows(&self) -> f64 {
        self.windows
    }

    /// Sample standard deviation of the per-window means; 0 with fewer than 3 windows.
    fn spread(&self) -> f64 {
        if self.windows < 3.0 {
            return 0.0;
        }
        (self.m2.max(0.0) / (self.windows - 1.0)).sqrt()
    }
}

/// A pooled mean's move: the normal level `b`, the examined `a`, the normal's spread `sd`
/// (with its floors) and the move's `z`.
struct Move {
    b: f64,
    a: f64,
    sd: f64,
    z: f64,
}

/// The move of a pooled mean from `before` to `after`: the spread of the normal's
/// per-window means (at least `rel_floor` of its level and `abs_floor`) gives the standard
/// error of both means. `None` when either range has no windows.
fn pooled_move(before: &Pooled, after: &Pooled, rel_floor: f64, abs_floor: f64) -> Option<Move> {
    if before.windows() == 0.0 || after.windows() == 0.0 {
        return None;
    }
    let (b, a) = (before.mean(), after.mean());
    let sd = before.spread().max(rel_floor * b.abs()).max(abs_floor);
    let se = sd * (1.0 / before.windows() + 1.0 / after.windows()).sqrt();
    Some(Move {
        b,
        a,
        sd,
        z: (a - b) / se,
    })
}

/// A rise of a pooled mean from `before` to `after`, if significant ([`pooled_move`]). With
/// two or more windows examined, the rise must also be significant without the highest of
/// them: a lasting move, not one slow request.
pub(super) fn increase(
    signal: Signal,
    on: Option<String>,
    before: &Pooled,
    after: &Pooled,
    rel_floor: f64,
    abs_floor: f64,
    min_z: f64,
) -> Option<Evidence> {
    let Move { b, a, sd, z } = pooled_move(before, after, rel_floor, abs_floor)?;
    if z < min_z {
        return None;
    }
    // The move has to stand without the examined range's peak window as well.
    if let Some((a_rest, windows_rest)) = after.without_peak() {
        let se_rest = sd * (1.0 / before.windows() + 1.0 / windows_rest).sqrt();
        if (a_rest - b) / se_rest < min_z {
            return None;
        }
    }
    Some(Evidence {
        signal,
        on,
        before: b,
        after: a,
        z,
        score: (a - b) / b.abs().max(abs_floor),
    })
}

/// A rise of a service's own time per request ([`increase`], floors 5 % of the normal
/// level and 0.5 ms).
pub(super) fn own_time_increase(before: &Pooled, after: &Pooled, min_z: f64) -> Option<Evidence> {
    increase(Signal::SelfTime, None, before, after, 0.05, 0.5, min_z)
}

/// A fall, significant by [`increase`]'s test mirrored (the normal's spread, its floors),
/// scored against the smaller, after level: a level falling tenfold scores as one rising
/// tenfold would (its `z` is negative).
pub(super) fn fall(
    signal: Signal,
    before: &Pooled,
    after: &Pooled,
    rel_floor: f64,
    abs_floor: f64,
    min_z: f64,
) -> Option<Evidence> {
    let Move { b, a, z, .. } = pooled_move(before, after, rel_floor, abs_floor)?;
    (-z >= min_z).then(|| Evidence {
        signal,
        on: None,
        before: b,
        after: a,
        z,
        score: (b - a) / a.abs().max(abs_floor),
    })
}

/// Evidence of a signal that did not move (score 0), for pooling.
pub(super) fn unmoved(signal: Signal, before: &Pooled, after: &Pooled) -> Evidence {
    Evidence {
        signal,
        on: None,
        before: before.mean(),
        after: after.mean(),
        z: 0.0,
        score: 0.0,
    }
}

/// The shares `cb / nb` and `ca / na` and the two-proportion z of their difference; `None`
/// when either whole is empty.
fn two_proportion_z((cb, nb): (f64, f64), (ca, na): (f64, f64)) -> Option<(f64, f64, f64)> {
    if nb <= 0.0 || na <= 0.0 {
        return None;
    }
    let (pb, pa) = (cb / nb, ca / na);
    let p = (cb + ca) / (nb + na);
    let se = (p * (1.0 - p) * (1.0 / na + 1.0 / nb)).sqrt().max(1e-9);
    Some((pb, pa, (pa - pb) / se))
}

/// A rise of the error share from `eb / nb` to `ea / na`, if significant (two-proportion
/// z); scored by the rise over max(normal share, 1 %).
pub(super) fn share_increase(eb: f64, nb: f64, ea: f64, na: f64, min_z: f64) -> Option<Evidence> {
    let (pb, pa, z) = two_proportion_z((eb, nb), (ea, na))?;
    if z < min_z {
        return None;
    }
    Some(Evidence {
        signal: Signal::Errors,
        on: None,
        before: pb,
        after: pa,
        z,
        score: (pa - pb) / pb.max(0.01),
    })
}

/// A change, either way, of a count per unit (`cb / nb` → `ca / na`: calls per request,
/// a template's records per log record), if significant against the count the normal
/// rate predicts (Poisson; the normal count floored at `min_count`, so a first occurrence
/// can count); scored as [`rate_move`]. `z` is signed.
pub(super) fn count_change(
    signal: Signal,
    on: &str,
    (cb, nb): (f64, f64),
    (ca, na): (f64, f64),
    min_count: f64,
    rate_floor: f64,
    min_z: f64,
) -> Option<Evidence> {
    if nb <= 0.0 || na <= 0.0 {
        return None;
    }
    let expected = cb.max(min_count) / nb * na;
    let z = (ca - expected) / (expected + 1.0).sqrt();
    if z.abs() < min_z {
        return None;
    }
    Some(rate_move(signal, on, cb / nb, ca / na, z, rate_floor))
}

/// A rate's move `before` → `after` with its `z`, scored by the change over the smaller of
/// the two rates (at least `rate_floor`): a rate falling to a tenth is as large a move as
/// one rising tenfold.
fn rate_move(
    signal: Signal,
    on: &str,
    before: f64,
    after: f64,
    z: f64,
    rate_floor: f64,
) -> Evidence {
    Evidence {
        signal,
        on: Some(on.to_string()),
        before,
        after,
        z,
        score: (after - before).abs() / before.min(after).max(rate_floor),
    }
}

/// A change, either way, of how many units of a whole have a property (`cb / nb` → `ca /
/// na`: requests that make a call, at most one each), if significant by a two-proportion
/// z; scored as [`rate_move`]. A code path every request took, skipped by the few
/// requests of a quiet service, is a move the Poisson test of [`count_change`] misses.
pub(super) fn proportion_change(
    signal: Signal,
    on: &str,
    (cb, nb): (f64, f64),
    (ca, na): (f64, f64),
    rate_floor: f64,
    min_z: f64,
) -> Option<Evidence> {
    let (pb, pa, z) = two_proportion_z((cb, nb), (ca, na))?;
    (z.abs() >= min_z).then(|| rate_move(signal, on, pb, pa, z, rate_floor))
}

/// A change, either way, of a share of a whole (`cb / nb` → `ca / na`: how often one log
/// statement follows another), tested as [`count_change`]; scored against the smaller of
/// the normal share and its complement (at least `floor`): a share near 0 or 1 is a fixed
/// code path, and its break is as large a move as a rate leaving its level. No `on`.
pub(super) fn share_change(
    signal: Signal,
    before: (f64, f64),
    after: (f64, f64),
    min_count: f64,
    floor: f64,
    min_z: f64,
) -> Option<Evidence> {
    let mut ev = count_change(signal, "", before, after, min_count, floor, min_z)?;
    ev.on = None;
    ev.score = (ev.after - ev.before).abs() / ev.before.min(1.0 - ev.before).max(floor);
    Some(ev)
}

/// `after / before` of the pooled means (self time may be negative: shifted by the
/// smaller of the two, so the order is kept).
pub(super) fn ratio(before: &Pooled, after: &Pooled) -> f64 {
    let (b, a) = (before.mean(), after.mean());
    let shift = (-b.min(a)).max(0.0) + 1e-3;
    (a + shift) / (b + shift)
}

/// `(after - before) / spread of the normal's per-window values` (spread floored at 1e-6).
pub(super) fn zscore(before: &Pooled, after: &Pooled) -> f64 {
    (after.mean() - before.mean()) / before.spread().max(1e-6)
}

#[cfg(test)]
mod tests {
    use super::Pooled;

    /// The running summary against a from-scratch recomputation, windows added one by one
    /// and pooled from two parts.
    #[test]
    fn the_summary_is_the_spread_of_the_window_means() {
        let windows: Vec<(f64, f64)> = (0..50)
            .map(|i| (((i * 37) % 11) as f64 * 3.5 + 100.0, 1.0 + (i % 4) as f64))
            .collect();
        let means: Vec<f64> = windows.iter().map(|(s, n)| s / n).collect();
        let m = means.iter().sum::<f64>() / means.len() as f64;
        let sd =
            (means.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (means.len() - 1) as f64).sqrt();
        let (sum, n) = windows
            .iter()
            .fold((0.0, 0.0), |(a, b), (s, k)| (a + s, b + k));

        let mut one = Pooled::default();
        for &(s, k) in &windows {
            one.add(s, k);
        }
        let (mut first, mut second) = (Pooled::default(), Pooled::default());
        for (i, &(s, k)) in windows.iter().enumerate() {
            if i < 17 {
                first.add(s, k)
            } else {
                second.add(s, k)
            }
        }
        first.absorb(&second);
        for p in [&one, &first] {
            assert!((p.spread() - sd).abs() < 1e-9, "{} vs {sd}", p.spread());
            assert!((p.mean() - sum / n).abs() < 1e-9);
            assert_eq!(p.windows(), 50.0);
        }
        let mut empty = Pooled::default();
        empty.absorb(&one);
        assert!((empty.spread() - sd).abs() < 1e-9);
    }
}
