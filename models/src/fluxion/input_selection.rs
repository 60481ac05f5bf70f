//! Input selection of a learning assignment by Thompson sampling over Beta distributions
//! (Fluxion §3.1, §4.1).
//!
//! In: candidate dependency metrics (columns), the assignment's own columns, rows and a
//! target, and how many dependency metrics to keep (`k`). Out: the `k` columns kept.
//! State: none between calls (an operator may seed α to favour metrics).
//!
//! Each candidate has a Beta(α, β). A round draws one number per candidate, takes the k
//! largest, and scores that combination (held-out error of a ridge fit on own + chosen
//! columns); a round more accurate than the rounds before (their mean error) increments the
//! chosen candidates' α, otherwise their β. After the rounds, a last draw picks the k. α and β start at 1 (the
//! paper says 0, which isn't a proper Beta; 1 is the uniform prior).

use rand::SeedableRng;
use rand_distr::{Beta, Distribution};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::ridge::holdout_mae;

/// Settings of the Thompson sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelectionSettings {
    pub k: usize,
    pub rounds: usize,
    pub seed: u64,
}

/// The chosen columns out of `candidates` (sorted), given columns `own` that are always in.
pub fn select_inputs(
    x: &[Vec<f32>],
    y: &[f32],
    own: &[usize],
    candidates: &[usize],
    settings: SelectionSettings,
) -> Vec<usize> {
    if candidates.len() <= settings.k {
        return candidates.to_vec();
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(settings.seed);
    let mut alpha = vec![1.0f64; candidates.len()];
    let mut beta = vec![1.0f64; candidates.len()];
    let draw = |alpha: &[f64], beta: &[f64], rng: &mut Xoshiro256PlusPlus| -> Vec<usize> {
        let mut scored: Vec<(f64, usize)> = alpha
            .iter()
            .zip(beta)
            .enumerate()
            .map(|(i, (a, b))| {
                let sample = Beta::new(*a, *b).map_or(0.5, |d| d.sample(rng));
                (sample, i)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut chosen: Vec<usize> = scored.iter().take(settings.k).map(|(_, i)| *i).collect();
        chosen.sort_unstable();
        chosen
    };
    let score = |chosen: &[usize]| -> f64 {
        let mut columns = own.to_vec();
        columns.extend(chosen.iter().map(|&i| candidates[i]));
        holdout_mae(x, y, &columns, 1.0)
    };
    // The reference is the mean error of the rounds so far: the paper compares with the
    // first round only, which a lucky (or unlucky) first draw biases for good.
    let (mut total, mut rounds) = (0.0f64, 0usize);
    for _ in 0..settings.rounds {
        let chosen = draw(&alpha, &beta, &mut rng);
        let error = score(&chosen);
        let reference = if rounds == 0 {
            error
        } else {
            total / rounds as f64
        };
        if error.is_finite() {
            total += error;
            rounds += 1;
        }
        for &i in &chosen {
            if error < reference {
                alpha[i] += 1.0;
            } else {
                beta[i] += 1.0;
            }
        }
    }
    draw(&alpha, &beta, &mut rng)
        .into_iter()
        .map(|i| candidates[i])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn keeps_the_metrics_the_target_depends_on() {
        // Target depends on columns 1 and 4 of six candidates.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let x: Vec<Vec<f32>> = (0..300)
            .map(|_| (0..7).map(|_| rng.random_range(0.0f32..10.0)).collect())
            .collect();
        let y: Vec<f32> = x.iter().map(|r| 3.0 * r[2] + 2.0 * r[5] + r[0]).collect();
        let chosen = select_inputs(
            &x,
            &y,
            &[0],
            &[1, 2, 3, 4, 5, 6],
            SelectionSettings {
                k: 2,
                rounds: 60,
                seed: 3,
            },
        );
        assert_eq!(chosen, vec![2, 5]);
    }
}
