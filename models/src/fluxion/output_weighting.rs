//! Output weighting of a learning assignment's models by differential evolution (Fluxion
//! §3.1, §4.1).
//!
//! In: each model's predictions on recent rows, and the targets. Out: one weight in [0, 1]
//! per model; the assignment predicts the weighted sum. State: none between calls (the
//! previous weights seed the population, as the paper caches w*).
//!
//! DE/rand/1/bin: a population of `population` candidates (uniform random, plus the
//! previous weights and "newest model only"); each generation, for every member, a mutant
//! `a + F (b - c)` from three others, clipped to [0, 1], is crossed over with the member
//! (rate CR) and replaces it when its mean absolute error is lower.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Settings of the differential evolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightingSettings {
    pub population: usize,
    pub generations: usize,
    /// Differential weight F.
    pub mutation: f64,
    /// Crossover rate CR.
    pub crossover: f64,
    pub seed: u64,
}

impl Default for WeightingSettings {
    fn default() -> Self {
        WeightingSettings {
            population: 16,
            generations: 40,
            mutation: 0.7,
            crossover: 0.8,
            seed: 1,
        }
    }
}

/// Mean absolute error of the weighted sum of `outputs[m][row]` against `y`.
pub fn weighted_mae(outputs: &[Vec<f32>], weights: &[f64], y: &[f32]) -> f64 {
    if y.is_empty() {
        return 0.0;
    }
    let mut total = 0.0;
    for (row, target) in y.iter().enumerate() {
        let p: f64 = outputs
            .iter()
            .zip(weights)
            .map(|(o, w)| w * o.get(row).copied().unwrap_or(0.0) as f64)
            .sum();
        total += (p - *target as f64).abs();
    }
    total / y.len() as f64
}

/// Weights for `outputs` (one vector of predictions per model) minimizing the error on `y`.
pub fn weigh_outputs(
    outputs: &[Vec<f32>],
    y: &[f32],
    previous: &[f64],
    settings: WeightingSettings,
) -> Vec<f64> {
    let k = outputs.len();
    if k <= 1 {
        return vec![1.0; k];
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(settings.seed);
    let mut population: Vec<Vec<f64>> = Vec::with_capacity(settings.population.max(4));
    if previous.len() == k {
        population.push(previous.to_vec());
    }
    let mut newest = vec![0.0; k];
    newest[k - 1] = 1.0;
    population.push(newest);
    while population.len() < settings.population.max(4) {
        population.push((0..k).map(|_| rng.random::<f64>()).collect());
    }
    let mut errors: Vec<f64> = population
        .iter()
        .map(|w| weighted_mae(outputs, w, y))
        .collect();
    let n = population.len();
    for _ in 0..settings.generations {
        for i in 0..n {
            let mut pick = || loop {
                let j = rng.random_range(0..n);
                if j != i {
                    break j;
                }
            };
            let (a, b, c) = (pick(), pick(), pick());
            let forced = rng.random_range(0..k);
            let trial: Vec<f64> = (0..k)
                .map(|d| {
                    if d == forced || rng.random::<f64>() < settings.crossover {
                        (population[a][d]
                            + settings.mutation * (population[b][d] - population[c][d]))
                            .clamp(0.0, 1.0)
                    } else {
                        population[i][d]
                    }
                })
                .collect();
            let error = weighted_mae(outputs, &trial, y);
            if error < errors[i] {
                population[i] = trial;
                errors[i] = error;
            }
        }
    }
    let best = (0..n)
        .min_by(|&a, &b| errors[a].total_cmp(&errors[b]))
        .unwrap_or(0);
    population.swap_remove(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_mixture_that_fits() {
        let y: Vec<f32> = (0..50).map(|i| i as f32).collect();
        // Model 0 predicts 2y, model 1 predicts 0: the best weights are (0.5, anything).
        let outputs = vec![
            y.iter().map(|v| 2.0 * v).collect::<Vec<_>>(),
            y.iter().map(|v| v + 30.0).collect::<Vec<_>>(),
        ];
        let w = weigh_outputs(&outputs, &y, &[], WeightingSettings::default());
        assert!(weighted_mae(&outputs, &w, &y) < 0.5, "{w:?}");
        assert!((w[0] - 0.5).abs() < 0.05 && w[1] < 0.02, "{w:?}");
    }
}
