//! Cumulative counters → per-second rates, as Prometheus' `rate()` reads them: a monotonic
//! cumulative sum (`k8s.pod.network.io` from the Collector's kubeletstats receiver,
//! `container_cpu_usage_seconds_total` from cAdvisor) says how much has happened since its
//! start; what a window needs is how fast it happens now.
//!
//! **In:** [`CumulativePoint`]s, in the order they were read. **Out:** per point after the
//! first of its series, a [`MetricPoint`] whose value is the increase since the series'
//! previous point over the time between them, per second. A fall of the value, or a new
//! start time, is a counter reset: the rate is then the value over the time since the new
//! start (when the point says when that was), as Prometheus counts a reset.
//!
//! **State:** per series (metric, service, instance and the point's attributes), its
//! latest point; series not seen for [`FORGET_AFTER_NS`] are forgotten once more than
//! [`MAX_SERIES`] are held.

use std::collections::HashMap;

use augur_operators::records::MetricPoint;

/// A cumulative monotonic sum's data point, its value the counter's.
#[derive(Clone, Debug, PartialEq)]
pub struct CumulativePoint {
    pub point: MetricPoint,
    /// The metric name and the point's attributes, hashed: one counter among the series of
    /// the same service and instance (`direction = receive` and `transmit`, say).
    pub series: u64,
    /// When the counter started (`start_time_unix_nano`; 0 when not given).
    pub start_ns: u64,
}

/// Series held before the stale ones are forgotten.
pub const MAX_SERIES: usize = 100_000;
/// How long a series may go unseen before it can be forgotten: 15 minutes.
pub const FORGET_AFTER_NS: u64 = 15 * 60 * 1_000_000_000;

#[derive(Default)]
pub struct Rates {
    latest: HashMap<(u64, String, String), (u64, f64, u64)>,
    /// Points older than their series' latest, or at the same time: no rate.
    pub out_of_order: u64,
}

impl Rates {
    /// The rate `p` gives, if any (not for a series' first point, nor one out of order).
    pub fn rate(&mut self, p: &CumulativePoint) -> Option<MetricPoint> {
        let now = p.point.time_ns;
        let key = (p.series, p.point.service.clone(), p.point.instance.clone());
        let previous = self.latest.get(&key).copied();
        if let Some((time, _, _)) = previous
            && now <= time
        {
            self.out_of_order += 1;
            return None;
        }
        if previous.is_none() && self.latest.len() >= MAX_SERIES {
            self.latest
                .retain(|_, (time, _, _)| now.saturating_sub(*time) < FORGET_AFTER_NS);
        }
        self.latest.insert(key, (now, p.point.value, p.start_ns));
        let (time, value, start) = previous?;
        let restarted = p.point.value < value || (p.start_ns != start && p.start_ns > time);
        let rate = if !restarted {
            (p.point.value - value) / ((now - time) as f64 / 1e9)
        } else if p.start_ns > 0 && p.start_ns < now {
            p.point.value / ((now - p.start_ns) as f64 / 1e9)
        } else {
            return None;
        };
        Some(MetricPoint {
            value: rate,
            ..p.point.clone()
        })
    }

    /// The rates of `points`, appended to `out`.
    pub fn extend(&mut self, points: &[CumulativePoint], out: &mut Vec<MetricPoint>) {
        out.extend(points.iter().filter_map(|p| self.rate(p)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use augur_operators::records::Resource;

    fn counter(
        series: u64,
        instance: &str,
        second: u64,
        value: f64,
        start_s: u64,
    ) -> CumulativePoint {
        CumulativePoint {
            point: MetricPoint {
                service: "cart".into(),
                instance: instance.into(),
                resource: Resource::Network,
                time_ns: second * 1_000_000_000,
                value,
            },
            series,
            start_ns: start_s * 1_000_000_000,
        }
    }

    fn rates_of(points: &[CumulativePoint]) -> Vec<f64> {
        let mut rates = Rates::default();
        let mut out = Vec::new();
        rates.extend(points, &mut out);
        out.iter().map(|p| p.value).collect()
    }

    #[test]
    fn increase_per_second_from_the_second_point_on() {
        let points = [
            counter(1, "a", 100, 1000.0, 0),
            counter(1, "a", 110, 1500.0, 0),
            counter(1, "a", 130, 1500.0, 0),
            counter(1, "a", 190, 7500.0, 0),
        ];
        assert_eq!(rates_of(&points), vec![50.0, 0.0, 100.0]);
    }

    #[test]
    fn series_and_instances_are_counted_apart() {
        // Receive and transmit of one instance, and a second instance, interleaved.
        let points = [
            counter(1, "a", 100, 1000.0, 0),
            counter(2, "a", 100, 10.0, 0),
            counter(1, "b", 100, 0.0, 0),
            counter(1, "a", 110, 2000.0, 0),
            counter(2, "a", 110, 20.0, 0),
            counter(1, "b", 110, 50.0, 0),
        ];
        assert_eq!(rates_of(&points), vec![100.0, 1.0, 5.0]);
    }

    #[test]
    fn a_reset_counts_from_the_new_start_or_not_at_all() {
        // Restarted at 105 s (the point says so): 300 over 5 s. Then a fall with no start
        // time: no rate, and the next point counts from it.
        let points = [
            counter(1, "a", 100, 1000.0, 50),
            counter(1, "a", 110, 300.0, 105),
            counter(1, "a", 120, 200.0, 0),
            counter(1, "a", 130, 400.0, 0),
        ];
        assert_eq!(rates_of(&points), vec![60.0, 20.0]);
    }

    #[test]
    fn points_out_of_order_are_counted_not_rated() {
        let mut rates = Rates::default();
        let mut out = Vec::new();
        let points = [
            counter(1, "a", 110, 2000.0, 0),
            counter(1, "a", 100, 1000.0, 0),
            counter(1, "a", 110, 2000.0, 0),
            counter(1, "a", 120, 2100.0, 0),
        ];
        rates.extend(&points, &mut out);
        assert_eq!(rates.out_of_order, 2);
        assert_eq!(out.iter().map(|p| p.value).collect::<Vec<_>>(), vec![10.0]);
    }
}
