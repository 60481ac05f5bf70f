//! The offered load: open-loop Poisson arrivals at the topology's rate, times a diurnal
//! swing, the active load spikes and any `rps` changes.

use super::super::topology::LoadSpec;
use super::{MS, Simulator};

#[derive(Debug)]
pub(super) struct Load {
    /// Requests per ns before the swing and spikes.
    pub(super) base_rate_per_ns: f64,
    diurnal_amplitude: f64,
    diurnal_period_ns: f64,
    /// The product of the active spikes' factors.
    pub(super) spike_factor: f64,
    pub(super) next_arrival_ns: u64,
}

impl Load {
    pub(super) fn new(spec: &LoadSpec, rate_scale: f64, start_ns: u64) -> Self {
        Load {
            base_rate_per_ns: spec.rate_per_s * rate_scale / 1e9,
            diurnal_amplitude: spec.diurnal_amplitude,
            diurnal_period_ns: spec.diurnal_period_s * 1e9,
            spike_factor: 1.0,
            next_arrival_ns: start_ns,
        }
    }
}

impl Simulator {
    fn rate_per_ns(&self, t_ns: u64) -> f64 {
        let load = &self.load;
        let mut rate = load.base_rate_per_ns * load.spike_factor;
        if load.diurnal_amplitude > 0.0 {
            let phase = (t_ns - self.start_ms * MS) as f64 / load.diurnal_period_ns;
            rate *= 1.0 + load.diurnal_amplitude * (std::f64::consts::TAU * phase).sin();
        }
        rate
    }

    /// The gap to the next arrival at the rate at `t_ns`, ns (at least 1).
    pub(super) fn exp_gap_ns(&mut self, t_ns: u64) -> u64 {
        let u = self.uniform();
        let gap = -(1.0 - u).ln() / self.rate_per_ns(t_ns).max(1e-18);
        (gap.min(1e15) as u64).max(1)
    }
}
