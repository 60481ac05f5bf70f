//! Incomplete instrumentation (Sage §6.1.2, Fig. 13): a share of the services export no
//! metrics, or no spans. The simulation itself is unchanged (same requests, same random
//! draws); only the exporters skip those services. Which services is drawn from the seed
//! on its own random stream. A service without spans is never an entry point (the
//! end-to-end latency is measured there); its callers' client spans name it as
//! `peer.service`, so the call is still seen at the border, and its own callees' server
//! spans point at parents that never arrive.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// Shares of services whose telemetry is missing, in [0, 1].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Instrumentation {
    /// Share of services that export no metrics. Default 0.
    pub drop_metrics: f64,
    /// Share of services that export no spans (entry services never). Default 0.
    pub drop_spans: f64,
}

/// Per service (by index), whether its metrics / spans are dropped.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dropped {
    pub metrics: Vec<bool>,
    pub spans: Vec<bool>,
}

/// `round(share × services)` services, chosen among `eligible`, deterministically per seed.
fn pick(
    share: f64,
    services: usize,
    eligible: &[usize],
    rng: &mut Xoshiro256PlusPlus,
) -> Vec<bool> {
    let mut out = vec![false; services];
    let count = ((share.clamp(0.0, 1.0) * services as f64).round() as usize).min(eligible.len());
    let mut order = eligible.to_vec();
    order.shuffle(rng);
    for &s in order.iter().take(count) {
        out[s] = true;
    }
    out
}

impl Instrumentation {
    pub(crate) fn choose(&self, seed: u64, services: usize, entries: &[usize]) -> Dropped {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x1a57_0000_d409_0001);
        let all: Vec<usize> = (0..services).collect();
        let non_entry: Vec<usize> = all
            .iter()
            .copied()
            .filter(|s| !entries.contains(s))
            .collect();
        let metrics = pick(self.drop_metrics, services, &all, &mut rng);
        let spans = pick(self.drop_spans, services, &non_entry, &mut rng);
        Dropped { metrics, spans }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_rounded_deterministic_and_spare_entries() {
        let i = Instrumentation {
            drop_metrics: 0.2,
            drop_spans: 0.5,
        };
        let a = i.choose(7, 10, &[0]);
        let b = i.choose(7, 10, &[0]);
        assert_eq!(a.metrics, b.metrics);
        assert_eq!(a.spans, b.spans);
        assert_eq!(a.metrics.iter().filter(|d| **d).count(), 2);
        assert_eq!(a.spans.iter().filter(|d| **d).count(), 5);
        assert!(!a.spans[0], "the entry keeps its spans");
        let all = Instrumentation {
            drop_metrics: 0.0,
            drop_spans: 1.0,
        }
        .choose(7, 4, &[0]);
        assert_eq!(all.spans, vec![false, true, true, true]);
        assert!(all.metrics.iter().all(|d| !d));
    }
}
