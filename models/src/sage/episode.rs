//! The diagnosis of a violation episode: the consensus of its first violating windows.
//!
//! A fault's first violating window often ends a fraction of a second into the fault, when
//! the slowed service has only begun to move the percentiles and the counterfactuals of
//! several services are close; the windows after it show the fault fully. The `sage`
//! detector therefore diagnoses every violating window of an episode and names the
//! culprits once it has seen `windows` of them, ranked by their mean repair share over
//! the episode's first `windows` violating windows.
//!
//! In: one [`Diagnosis`] per violating window, and the QoS state of every window (an
//! episode ends after two windows in a row that meet QoS — one passing window inside a
//! run of violations doesn't split it, as in the scorer's episodes).
//! Out: once the episode has `windows` diagnoses (and on every violating window after
//! that), a [`Consensus`]: services by mean repair share, best first, and the resource
//! named most often for the top service. State: the episode's first `windows` diagnoses
//! and the count of passing windows since the last violating one.

use std::collections::BTreeMap;

use augur_operators::Resource;

use super::counterfactual::Diagnosis;

/// The per-episode answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Consensus {
    /// Services by mean repair share over the windows used (1 = that repair alone brings
    /// the end-to-end latency down to the SLO or below, 0 = no change), best first.
    pub ranked: Vec<(String, f64)>,
    /// The resource most often named for the top service by the windows whose top culprit
    /// it was (ties: the latest), if any.
    pub resource: Option<Resource>,
    /// Windows the consensus is over.
    pub windows: usize,
}

/// One diagnosed window: per service its repair share, and the top culprit's resource.
type WindowDiagnosis = (Vec<(String, f64)>, Option<(String, Resource)>);

/// Accumulates one episode's diagnoses.
#[derive(Clone, Debug, Default)]
pub struct Episode {
    windows: usize,
    seen: Vec<WindowDiagnosis>,
    passing: usize,
}

/// How much repairing a service closes the gap to the SLO, in [0, 1].
fn share(observed: f64, slo: f64, repaired: f64) -> f64 {
    let excess = (observed - slo).max(1e-9);
    ((observed - repaired) / excess).clamp(0.0, 1.0)
}

impl Episode {
    /// An episode tracker whose consensus needs `windows` violating windows (at least 1;
    /// 1 reproduces the single-window diagnosis).
    pub fn new(windows: usize) -> Episode {
        Episode {
            windows: windows.max(1),
            ..Episode::default()
        }
    }

    /// A window that met QoS: two in a row end the episode.
    pub fn pass(&mut self) {
        self.passing += 1;
        if self.passing >= 2 {
            self.seen.clear();
        }
    }

    /// A violating window's diagnosis; the consensus once the episode has enough windows.
    pub fn violate(&mut self, d: &Diagnosis) -> Option<Consensus> {
        let t = &d.target;
        let resource = d.resources.first().map(|r| r.0);
        self.push(t.observed_ms, t.slo_ms, &d.ranked, resource)
    }

    /// [`Episode::violate`] from its parts: the window's observed end-to-end latency and
    /// SLO (ms), its services with their counterfactual latency when repaired (the
    /// diagnosis's order), and the resource named for the first.
    pub fn push(
        &mut self,
        observed_ms: f64,
        slo_ms: f64,
        ranked: &[(String, f64)],
        resource: Option<Resource>,
    ) -> Option<Consensus> {
        self.passing = 0;
        if self.seen.len() < self.windows {
            let shares = ranked
                .iter()
                .map(|(s, ms)| (s.clone(), share(observed_ms, slo_ms, *ms)))
                .collect();
            let top = ranked
                .first()
                .zip(resource)
                .map(|((s, _), r)| (s.clone(), r));
            self.seen.push((shares, top));
        }
        (self.seen.len() >= self.windows).then(|| self.consensus())
    }

    fn consensus(&self) -> Consensus {
        let n = self.seen.len().max(1) as f64;
        let mut sum: BTreeMap<&str, f64> = BTreeMap::new();
        for (shares, _) in &self.seen {
            for (s, v) in shares {
                *sum.entry(s.as_str()).or_default() += v;
            }
        }
        // The order of the latest window breaks ties (it lists the greedy set first).
        let latest: Vec<&str> = self
            .seen
            .last()
            .map(|(s, _)| s.iter().map(|(name, _)| name.as_str()).collect())
            .unwrap_or_default();
        let mut ranked: Vec<(String, f64)> = sum
            .into_iter()
            .map(|(s, v)| (s.to_string(), v / n))
            .collect();
        ranked.sort_by(|a, b| {
            b.1.total_cmp(&a.1).then_with(|| {
                let pa = latest.iter().position(|s| *s == a.0);
                let pb = latest.iter().position(|s| *s == b.0);
                pa.cmp(&pb)
            })
        });
        let resource = ranked.first().and_then(|(top, _)| {
            let mut votes: BTreeMap<Resource, (usize, usize)> = BTreeMap::new();
            for (k, (_, named)) in self.seen.iter().enumerate() {
                if let Some((s, r)) = named {
                    if s == top {
                        let v = votes.entry(*r).or_default();
                        v.0 += 1;
                        v.1 = k;
                    }
                }
            }
            votes.into_iter().max_by_key(|(_, v)| *v).map(|(r, _)| r)
        });
        Consensus {
            ranked,
            resource,
            windows: self.seen.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(order: &[(&str, f64)]) -> Vec<(String, f64)> {
        order.iter().map(|(s, ms)| (s.to_string(), *ms)).collect()
    }

    #[test]
    fn names_the_service_most_windows_agree_on() {
        let mut e = Episode::new(3);
        // Observed 100 ms, SLO 50 ms: repairing a to 60 ms closes 80 % of the excess.
        let early = window(&[("b", 70.0), ("a", 80.0), ("c", 100.0)]);
        let later = window(&[("a", 45.0), ("b", 95.0), ("c", 100.0)]);
        assert_eq!(e.push(100.0, 50.0, &early, Some(Resource::Memory)), None);
        assert_eq!(e.push(100.0, 50.0, &later, Some(Resource::Cpu)), None);
        let c = e
            .push(100.0, 50.0, &later, Some(Resource::Cpu))
            .expect("three windows");
        let names: Vec<&str> = c.ranked.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        // a: shares 0.4, 1, 1 → 0.8; b: 0.6, 0.1, 0.1 → 0.27.
        assert!((c.ranked[0].1 - 0.8).abs() < 1e-9, "{:?}", c.ranked);
        assert_eq!(c.resource, Some(Resource::Cpu));
        assert_eq!(c.windows, 3);
        // Later windows of the same episode keep the first three's consensus.
        let d = e.push(100.0, 50.0, &early, Some(Resource::Memory));
        assert_eq!(d, Some(c));
    }

    #[test]
    fn two_passing_windows_end_the_episode_one_does_not() {
        let w = window(&[("a", 40.0), ("b", 100.0)]);
        let mut e = Episode::new(2);
        assert_eq!(e.push(100.0, 50.0, &w, None), None);
        e.pass();
        assert!(e.push(100.0, 50.0, &w, None).is_some());
        e.pass();
        e.pass();
        assert_eq!(e.push(100.0, 50.0, &w, None), None, "a new episode");
    }

    #[test]
    fn one_window_answers_at_once() {
        let mut e = Episode::new(1);
        let c = e
            .push(100.0, 50.0, &window(&[("b", 60.0), ("a", 90.0)]), None)
            .expect("one window");
        assert_eq!(c.ranked[0].0, "b");
        assert_eq!(c.resource, None);
    }
}
