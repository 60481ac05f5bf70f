//! The statistical baselines the papers compare against: [`nsigma`] (a service's latency
//! beyond n standard deviations of its recent past) and the [`cpu_threshold`] autoscaler
//! rules.

pub mod cpu_threshold;
pub mod nsigma;

pub use cpu_threshold::CpuThreshold;
pub use nsigma::{NSigma, NSigmaConfig};
