//! Seer's per-service input features, read from a closed window.
//!
//! In: a [`WindowSnapshot`] and the model's service order (back end → front end). Out: a
//! row-major `[services × FEATURES]` matrix of raw (log-compressed, not yet standardized)
//! values; services missing from the window are zeros. [`window_matrix`] keeps no state;
//! [`UsageFill`] keeps each service's last reported usage, so that windows shorter than
//! the metrics interval (which have no usage sample every other window) carry the last
//! sample forward instead of a zero, and can keep only the columns a checkpoint names
//! (older checkpoints were trained on fewer features: [`columns`]).

use std::collections::HashMap;

use augur_operators::{Resource, ServiceFeatures, WindowSnapshot};

/// Feature names, in column order: queue depth, latency percentiles, load, errors, usage,
/// the in-flight requests at the window's end (the instantaneous queue depth), the slowest
/// callee's p99 as this service's client spans saw it, and this service's p99 as its
/// slowest caller saw it. Beside the service's own (server-side) p99 they tell latency the
/// service adds from latency it waits on, and the network on the way to it from the
/// service itself — what names the service a violation starts at (Sage's Yc vs Ys).
pub const FEATURES: [&str; 11] = [
    "outstanding",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "requests_per_s",
    "error_ratio",
    "cpu_max",
    "queue_max",
    "in_flight",
    "callee_p99_max_ms",
    "caller_seen_p99_max_ms",
];

/// A feature name a checkpoint uses that this build doesn't compute.
#[derive(Debug, thiserror::Error)]
#[error("unknown Seer feature {0:?} (this build computes {FEATURES:?})")]
pub struct UnknownFeature(pub String);

/// The [`FEATURES`] columns of `names`, in `names`' order.
pub fn columns(names: &[String]) -> Result<Vec<usize>, UnknownFeature> {
    names
        .iter()
        .map(|n| {
            FEATURES
                .iter()
                .position(|f| f == n)
                .ok_or_else(|| UnknownFeature(n.clone()))
        })
        .collect()
}

/// Number of features per service.
pub const N_FEATURES: usize = FEATURES.len();

/// Client-side p99s of the calls between services in a window, per service.
#[derive(Default)]
struct ClientP99<'w> {
    /// Per caller, the largest over its calls to other services.
    of_callees: HashMap<&'w str, f64>,
    /// Per callee, the largest over the calls other services made to it.
    seen_by_callers: HashMap<&'w str, f64>,
}

impl<'w> ClientP99<'w> {
    fn of(window: &'w WindowSnapshot) -> Self {
        let mut out = ClientP99::default();
        for e in window.edges.iter().filter(|e| e.caller != e.callee) {
            let p99 = e.client_ms[4];
            let max = |m: &mut HashMap<&'w str, f64>, s: &'w str| {
                let v = m.entry(s).or_insert(0.0);
                *v = v.max(p99);
            };
            max(&mut out.of_callees, &e.caller);
            max(&mut out.seen_by_callers, &e.callee);
        }
        out
    }

    /// (slowest callee's p99, p99 as the slowest caller saw it) of `service`; 0 for none.
    fn get(&self, service: &str) -> (f64, f64) {
        (
            self.of_callees.get(service).copied().unwrap_or(0.0),
            self.seen_by_callers.get(service).copied().unwrap_or(0.0),
        )
    }
}

/// One service's features, `client_p99` being (its slowest callee's p99, its p99 as its
/// slowest caller saw it), 0 where there is none. Magnitudes (queue, latency, rate) are
/// `ln(1 + x)` so that heavy tails don't dominate; ratios stay as they are.
pub fn service_row(
    s: &ServiceFeatures,
    window_ms: u64,
    client_p99: (f64, f64),
) -> [f32; N_FEATURES] {
    let secs = (window_ms.max(1) as f64) / 1000.0;
    let ln = |x: f64| x.max(0.0).ln_1p() as f32;
    let error_ratio = if s.requests == 0 {
        0.0
    } else {
        s.errors as f64 / s.requests as f64
    };
    [
        ln(s.outstanding),
        ln(s.latency_ms[0]),
        ln(s.latency_ms[2]),
        ln(s.latency_ms[4]),
        ln(s.requests as f64 / secs),
        error_ratio as f32,
        s.usage[Resource::Cpu.index()][3] as f32,
        ln(s.usage[Resource::Queue.index()][3]),
        ln(s.in_flight),
        ln(client_p99.0),
        ln(client_p99.1),
    ]
}

/// The window's features in `services` order, flattened row-major; missing services are zeros.
pub fn window_matrix(window: &WindowSnapshot, services: &[String]) -> Vec<f32> {
    let mut out = vec![0.0f32; services.len() * N_FEATURES];
    let client = ClientP99::of(window);
    for s in &window.services {
        if let Some(i) = services.iter().position(|name| *name == s.service) {
            out[i * N_FEATURES..(i + 1) * N_FEATURES].copy_from_slice(&service_row(
                s,
                window.window_ms,
                client.get(&s.service),
            ));
        }
    }
    out
}

/// Columns that come from resource metrics rather than spans.
const USAGE_COLUMNS: [usize; 2] = [6, 7];

/// Carries each service's last reported usage (`cpu_max`, `queue_max`) into windows in
/// which none of its instances reported a metric sample, and keeps only the chosen
/// columns. State: the last usage columns per service name; the columns kept.
#[derive(Clone, Debug)]
pub struct UsageFill {
    last: HashMap<String, [f32; USAGE_COLUMNS.len()]>,
    columns: Vec<usize>,
}

impl Default for UsageFill {
    /// Every column of [`FEATURES`].
    fn default() -> Self {
        UsageFill {
            last: HashMap::new(),
            columns: (0..N_FEATURES).collect(),
        }
    }
}

impl UsageFill {
    /// Keeps only the features `names` (a checkpoint's layout), in that order.
    pub fn for_features(names: &[String]) -> Result<Self, UnknownFeature> {
        Ok(UsageFill {
            last: HashMap::new(),
            columns: columns(names)?,
        })
    }

    /// Columns per service of [`UsageFill::matrix`]'s output.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Like [`window_matrix`] (but `[services × width]`, the chosen columns), with
    /// unreported usage carried forward from earlier windows.
    pub fn matrix(&mut self, window: &WindowSnapshot, services: &[String]) -> Vec<f32> {
        let n = self.columns.len();
        let mut out = vec![0.0f32; services.len() * n];
        let client = ClientP99::of(window);
        for s in &window.services {
            let mut row = service_row(s, window.window_ms, client.get(&s.service));
            let reported = s.usage.iter().flatten().any(|v| *v != 0.0);
            if reported {
                self.last
                    .insert(s.service.clone(), USAGE_COLUMNS.map(|c| row[c]));
            } else if let Some(last) = self.last.get(&s.service) {
                for (c, v) in USAGE_COLUMNS.iter().zip(last) {
                    row[*c] = *v;
                }
            }
            if let Some(i) = services.iter().position(|name| *name == s.service) {
                for (o, c) in out[i * n..(i + 1) * n].iter_mut().zip(&self.columns) {
                    *o = row[*c];
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use augur_operators::EdgeFeatures;

    use super::*;

    /// `db` at window end 1000: 10 requests, queue 2, one replica, no usage.
    fn db(errors: u64, latency_ms: [f64; 5], in_flight: f64) -> ServiceFeatures {
        ServiceFeatures {
            window_end: 1000,
            service: "db".into(),
            requests: 10,
            errors,
            latency_ms,
            outstanding: 2.0,
            replicas: 1,
            in_flight,
            ..Default::default()
        }
    }

    fn one_window(s: ServiceFeatures) -> WindowSnapshot {
        WindowSnapshot {
            window_end: 1000,
            window_ms: 1000,
            services: vec![s],
            ..WindowSnapshot::default()
        }
    }

    #[test]
    fn missing_services_are_zero_and_order_is_respected() {
        let w = one_window(db(5, [1.0, 2.0, 3.0, 4.0, 5.0], 0.0));
        let m = window_matrix(&w, &["fe".to_string(), "db".to_string()]);
        assert!(m[..N_FEATURES].iter().all(|x| *x == 0.0));
        assert!((m[N_FEATURES] - 3.0f32.ln()).abs() < 1e-6);
        assert!((m[N_FEATURES + 5] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn usage_is_carried_into_windows_without_a_sample() {
        let mut s = ServiceFeatures {
            window_end: 250,
            ..db(0, [1.0; 5], 0.0)
        };
        s.usage[Resource::Cpu.index()][3] = 0.7;
        s.usage[Resource::Queue.index()][3] = 4.0;
        let window = |s: &ServiceFeatures, end| WindowSnapshot {
            window_end: end,
            window_ms: 250,
            services: vec![s.clone()],
            ..WindowSnapshot::default()
        };
        let services = ["db".to_string()];
        let mut fill = UsageFill::default();
        let first = fill.matrix(&window(&s, 250), &services);
        assert!((first[6] - 0.7).abs() < 1e-6);
        s.usage = [[0.0; 4]; 5];
        s.outstanding = 3.0;
        let second = fill.matrix(&window(&s, 500), &services);
        assert_eq!(second[6..8], first[6..8]);
        assert!((second[0] - 4.0f32.ln()).abs() < 1e-6);
        // Without the carry, the usage columns are zeros.
        assert_eq!(window_matrix(&window(&s, 500), &services)[6..8], [0.0, 0.0]);
    }

    #[test]
    fn a_caller_sees_its_slowest_callee_and_a_callee_its_slowest_caller() {
        let edge = |caller: &str, callee: &str, p99: f64| EdgeFeatures {
            window_end: 1000,
            caller: caller.into(),
            callee: callee.into(),
            calls: 5,
            errors: 0,
            client_ms: [1.0, 1.0, 1.0, 1.0, p99],
            server_ms: [1.0; 5],
            gap_ms: [0.0; 5],
            parallel: Default::default(),
            client_total_ms: 0.0,
            gap_total_ms: 0.0,
            gap_calls: 0,
            gap_over: Default::default(),
        };
        let fe = ServiceFeatures {
            service: "fe".into(),
            ..db(0, [1.0; 5], 0.0)
        };
        let mut w = one_window(db(0, [1.0; 5], 0.0));
        w.services.push(fe);
        w.edges = vec![
            edge("fe", "db", 30.0),
            edge("fe", "cache", 80.0),
            // A self-call is not a callee.
            edge("db", "db", 500.0),
        ];
        let services = ["fe".to_string(), "db".to_string()];
        let m = UsageFill::default().matrix(&w, &services);
        // fe waits on cache (80 ms) at worst; db, a leaf, waits on nothing.
        assert!((m[9] - 81.0f32.ln()).abs() < 1e-5);
        assert_eq!(m[N_FEATURES + 9], 0.0);
        // fe has no caller; its callers saw db answer at 30 ms.
        assert_eq!(m[10], 0.0);
        assert!((m[N_FEATURES + 10] - 31.0f32.ln()).abs() < 1e-5);
        assert_eq!(window_matrix(&w, &services), m);
    }

    #[test]
    fn a_checkpoints_features_pick_their_columns() {
        let w = one_window(db(0, [1.0; 5], 6.0));
        let services = ["db".to_string()];
        let full = UsageFill::default().matrix(&w, &services);
        assert_eq!(full.len(), N_FEATURES);
        assert!((full[8] - 7.0f32.ln()).abs() < 1e-6);
        let names = ["in_flight".to_string(), "outstanding".to_string()];
        let mut picked = UsageFill::for_features(&names).expect("known features");
        assert_eq!(picked.width(), 2);
        assert_eq!(picked.matrix(&w, &services), vec![full[8], full[0]]);
        assert!(UsageFill::for_features(&["nope".to_string()]).is_err());
    }
}
