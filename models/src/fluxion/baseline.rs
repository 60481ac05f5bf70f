//! The monolithic baseline the paper compares against: one MLP from every service's own
//! inputs (knobs and states, concatenated in a fixed service order) to the end-to-end
//! latency at one quantile. After a deployment change it is retrained from scratch, on
//! data collected after the change.
//!
//! In: samples. Out: end-to-end latency predictions. State: the service order and the MLP.

use super::features::{OWN, Sample};
use super::mlp::{Mlp, MlpSettings};

#[derive(Debug)]
pub struct Monolithic {
    pub entry: String,
    pub quantile: usize,
    pub services: Vec<String>,
    mlp: Mlp,
}

/// Settings of the baseline: a wider network than an assignment's (it models the system).
pub fn baseline_settings() -> MlpSettings {
    MlpSettings {
        hidden: 32,
        epochs: 400,
        learning_rate: 0.01,
        weight_decay: 1e-3,
    }
}

fn input(services: &[String], s: &Sample) -> Vec<f32> {
    let mut x = Vec::with_capacity(services.len() * OWN);
    for name in services {
        x.extend(s.services.get(name).map_or([0.0; OWN], |o| o.own));
    }
    x
}

impl Monolithic {
    /// Trains from scratch on the samples that measured the entry's latency.
    pub fn fit(samples: &[Sample], entry: &str, quantile: usize, settings: &MlpSettings) -> Self {
        let mut services: Vec<String> = samples
            .iter()
            .flat_map(|s| s.services.keys().cloned())
            .collect();
        services.sort();
        services.dedup();
        let (x, y): (Vec<Vec<f32>>, Vec<f32>) = samples
            .iter()
            .filter_map(|s| Some((input(&services, s), s.e2e(entry)?[quantile])))
            .unzip();
        let mut mlp = Mlp::new(services.len() * OWN, settings.hidden);
        mlp.fit(&x, &y, settings, true);
        Monolithic {
            entry: entry.to_string(),
            quantile,
            services,
            mlp,
        }
    }

    pub fn predict(&self, samples: &[Sample]) -> Vec<f32> {
        let x: Vec<Vec<f32>> = samples.iter().map(|s| input(&self.services, s)).collect();
        self.mlp.predict(&x)
    }
}
