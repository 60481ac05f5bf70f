//! Seer's per-service input features, read from a closed window.
//!
//! In: a [`WindowSnapshot`] and the model's service order (back end → front end). Out: a
//! row-major `[services × FEATURES]` matrix of raw (log-compressed, not yet standardized)
//! values; services missing from the window are zeros. No state.

use augur_operators::{Resource, ServiceFeatures, WindowSnapshot};

/// Feature names, in column order: queue depth, latency percentiles, load, errors, usage.
pub const FEATURES: [&str; 8] = [
    "outstanding",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "requests_per_s",
    "error_ratio",
    "cpu_max",
    "queue_max",
];

/// Number of features per service.
pub const N_FEATURES: usize = FEATURES.len();

/// One service's features. Magnitudes (queue, latency, rate) are `ln(1 + x)` so that
/// heavy tails don't dominate; ratios stay as they are.
pub fn service_row(s: &ServiceFeatures, window_ms: u64) -> [f32; N_FEATURES] {
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
    ]
}

/// The window's features in `services` order, flattened row-major; missing services are zeros.
pub fn window_matrix(window: &WindowSnapshot, services: &[String]) -> Vec<f32> {
    let mut out = vec![0.0f32; services.len() * N_FEATURES];
    for s in &window.services {
        if let Some(i) = services.iter().position(|name| *name == s.service) {
            out[i * N_FEATURES..(i + 1) * N_FEATURES]
                .copy_from_slice(&service_row(s, window.window_ms));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_services_are_zero_and_order_is_respected() {
        let s = ServiceFeatures {
            window_end: 1000,
            service: "db".into(),
            requests: 10,
            errors: 5,
            latency_ms: [1.0, 2.0, 3.0, 4.0, 5.0],
            outstanding: 2.0,
            replicas: 1,
            usage: [[0.0; 4]; 5],
        };
        let w = WindowSnapshot {
            window_end: 1000,
            window_ms: 1000,
            services: vec![s],
            ..WindowSnapshot::default()
        };
        let m = window_matrix(&w, &["fe".to_string(), "db".to_string()]);
        assert!(m[..N_FEATURES].iter().all(|x| *x == 0.0));
        assert!((m[N_FEATURES] - 3.0f32.ln()).abs() < 1e-6);
        assert!((m[N_FEATURES + 5] - 0.5).abs() < 1e-6);
    }
}
