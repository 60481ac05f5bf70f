//! The CPU-utilization threshold rule of utilization autoscalers (a baseline).
//!
//! Fires when any service's busiest replica uses more than `threshold` of its CPU in a
//! window — what a Kubernetes HPA-style autoscaler at a 50 % or 70 % target reacts to —
//! and ranks services by that utilization. It keeps no state.

use augur_operators::{AlertKind, Culprit, Detection, Detector, Resource, WindowSnapshot};

pub struct CpuThreshold {
    name: String,
    threshold: f64,
    horizon_ms: u64,
}

impl CpuThreshold {
    /// `threshold` is a fraction of the CPU limit, e.g. 0.7.
    pub fn new(threshold: f64, horizon_ms: u64) -> Self {
        CpuThreshold {
            name: format!("cpu-threshold-{}", (threshold * 100.0).round() as u32),
            threshold,
            horizon_ms,
        }
    }
}

impl Detector for CpuThreshold {
    fn name(&self) -> &str {
        &self.name
    }

    fn observe(&mut self, window: &WindowSnapshot) -> Vec<Detection> {
        // Index 3 of the usage vector is the max across replicas.
        let mut by_cpu: Vec<(f64, &str)> = window
            .services
            .iter()
            .map(|s| (s.usage[Resource::Cpu.index()][3], s.service.as_str()))
            .filter(|(cpu, _)| *cpu > 0.0)
            .collect();
        by_cpu.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        match by_cpu.first() {
            Some((cpu, service)) if *cpu > self.threshold => vec![Detection {
                kind: AlertKind::QosViolationPredicted,
                service: service.to_string(),
                probability: cpu.min(1.0),
                horizon_ms: self.horizon_ms,
                culprits: by_cpu
                    .iter()
                    .take(5)
                    .map(|(cpu, service)| Culprit {
                        service: service.to_string(),
                        score: *cpu,
                        resource: Some(Resource::Cpu),
                        operation: None,
                    })
                    .collect(),
                summary: format!(
                    "{service}: CPU {:.0} % above the {:.0} % target",
                    cpu * 100.0,
                    self.threshold * 100.0
                ),
            }],
            _ => Vec::new(),
        }
    }
}
