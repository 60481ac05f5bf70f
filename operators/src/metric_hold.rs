//! Metric hold: a service's latest sampled resource usage stands until it is stale.
//!
//! Metrics are scraped every 10 s to a minute; windows pass every second. A window in which
//! no instance of a service reported a resource has zeros there, which read as an idle
//! service to any model of the window's features. As Prometheus keeps a series' last sample
//! for its lookback (5 minutes), a window's missing usage is the latest window's that had
//! it, while that is at most `stale_ms` old; past that the service's usage is unknown again
//! (zeros, as before it was first seen).
//!
//! **In:** window snapshots' service rows, in window order. **Out:** the same rows, each
//! resource that no instance reported in the window filled from the service's latest
//! sampled usage of it within `stale_ms`, and marked in [`ServiceFeatures::usage_held`] so
//! statistics over samples can skip it. Rows are neither added nor removed.
//! **State:** per service and resource, the latest sampled usage and its window's end;
//! entries older than `stale_ms` are dropped as windows pass.

use std::collections::BTreeMap;

use crate::records::{EventTime, Resource, ServiceFeatures};

/// Prometheus' default lookback: a sample older than this is stale.
pub const DEFAULT_METRIC_STALE_MS: u64 = 300_000;

/// A service's latest sampled usage per resource ([`Resource::index`]), with the end of its
/// window.
type Latest = [Option<(EventTime, [f64; 4])>; 5];

/// The hold's state; see the module docs.
#[derive(Debug, Default)]
pub struct MetricHold {
    stale_ms: u64,
    latest: BTreeMap<String, Latest>,
}

impl MetricHold {
    /// A hold of samples up to `stale_ms` old (0 holds nothing).
    pub fn new(stale_ms: u64) -> Self {
        MetricHold {
            stale_ms,
            latest: BTreeMap::new(),
        }
    }

    /// Fills the rows of the window ending at `window_end`; windows must come in order.
    pub fn fill(&mut self, window_end: EventTime, rows: &mut [ServiceFeatures]) {
        if self.stale_ms == 0 {
            return;
        }
        for row in rows.iter_mut() {
            // A service is entered once, at its first sample; rows of services without one
            // (spans only) cost a lookup.
            let sampled = row.usage.iter().any(|u| u.iter().any(|v| *v != 0.0));
            let latest = match self.latest.get_mut(row.service.as_str()) {
                Some(latest) => latest,
                None if sampled => self.latest.entry(row.service.clone()).or_default(),
                None => continue,
            };
            for r in Resource::ALL {
                let i = r.index();
                if row.usage[i].iter().any(|v| *v != 0.0) {
                    latest[i] = Some((window_end, row.usage[i]));
                } else if let Some((end, usage)) = latest[i]
                    && window_end.saturating_sub(end) <= self.stale_ms
                {
                    row.usage[i] = usage;
                    row.usage_held[i] = true;
                }
            }
        }
        let stale_ms = self.stale_ms;
        self.latest.retain(|_, by_resource| {
            for slot in by_resource.iter_mut() {
                if slot.is_some_and(|(end, _)| window_end.saturating_sub(end) > stale_ms) {
                    *slot = None;
                }
            }
            by_resource.iter().any(Option::is_some)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(service: &str, cpu: f64) -> ServiceFeatures {
        let mut usage = [[0.0; 4]; 5];
        usage[Resource::Cpu.index()] = [cpu; 4];
        ServiceFeatures {
            window_end: 0,
            service: service.into(),
            requests: 1,
            latency_ms: [1.0; 5],
            replicas: 1,
            usage,
            ..Default::default()
        }
    }

    /// Windows of 1 s, CPU scraped at 1 s and 61 s: every window between holds the first
    /// sample, marked held; the samples themselves are not; memory, never sampled, stays 0.
    /// With a 30 s bound, windows 32..=60 are stale again: zeros, not held.
    #[test]
    fn a_sample_stands_until_stale() {
        for (stale_ms, held_until) in [(DEFAULT_METRIC_STALE_MS, 60), (30_000, 31)] {
            let mut hold = MetricHold::new(stale_ms);
            for s in 1..=70u64 {
                let cpu = match s {
                    1 => 0.4,
                    61 => 0.6,
                    _ => 0.0,
                };
                let mut rows = [row("api", cpu)];
                hold.fill(s * 1000, &mut rows);
                let (usage, held) = (rows[0].usage, rows[0].usage_held);
                let cpu_now = usage[Resource::Cpu.index()][1];
                let expected = match s {
                    1 => 0.4,
                    2.. if s <= held_until => 0.4,
                    61.. => 0.6,
                    _ => 0.0,
                };
                assert_eq!(cpu_now, expected, "stale {stale_ms}: window {s}");
                let is_held = !matches!(s, 1 | 61) && expected != 0.0;
                assert_eq!(held[Resource::Cpu.index()], is_held, "window {s}");
                assert_eq!(usage[Resource::Memory.index()], [0.0; 4]);
                assert!(!held[Resource::Memory.index()]);
            }
        }
    }

    /// Services are held apart, and a bound of 0 holds nothing.
    #[test]
    fn services_are_held_apart_and_zero_holds_nothing() {
        let mut hold = MetricHold::new(DEFAULT_METRIC_STALE_MS);
        hold.fill(1000, &mut [row("a", 0.5), row("b", 0.0)]);
        let mut rows = [row("a", 0.0), row("b", 0.0)];
        hold.fill(2000, &mut rows);
        assert_eq!(rows[0].usage[Resource::Cpu.index()], [0.5; 4]);
        assert_eq!(rows[1].usage[Resource::Cpu.index()], [0.0; 4]);
        let mut off = MetricHold::new(0);
        off.fill(1000, &mut [row("a", 0.5)]);
        let mut rows = [row("a", 0.0)];
        off.fill(2000, &mut rows);
        assert_eq!(rows[0].usage[Resource::Cpu.index()], [0.0; 4]);
        assert!(!rows[0].usage_held[Resource::Cpu.index()]);
    }
}
