//! augur-models: detectors and models behind the [`augur_operators::Detector`] boundary.
//!
//! Statistical detectors: `nsigma` and the CPU-threshold autoscaler rules that the papers
//! compare against; `evidence`, training-free root causes from each service's own signals
//! against its recent past. Learned (libtorch via tch): `seer` (violation prediction; its
//! network, datasets, training, checkpoints and device choice), `sage` (counterfactual
//! root-cause analysis, in [`sage`]) and `fluxion` (latency forecasts from an inference
//! graph, in [`fluxion`]). [`registry`] builds any of them by name. The checkpoints shipped
//! with augur are embedded in the binary ([`shipped`]).

pub mod checkpoint;
pub mod cpu_threshold;
pub mod dataset;
pub mod device;
pub mod evidence;
pub mod features;
pub mod fluxion;
pub mod labels;
pub mod layout;
pub mod nsigma;
pub mod registry;
pub mod remap;
pub mod sage;
pub mod seer;
pub mod seer_net;
pub mod shipped;
pub mod train;

pub use registry::{DETECTOR_NAMES, DetectorSettings, RegistryError, build, build_sharing};

/// Tests that train libtorch models hold this lock: libtorch's weight initialisation draws
/// from one process-wide generator, so parallel tests would make each other's seeds (and
/// results) depend on scheduling.
#[cfg(test)]
pub(crate) fn torch_test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
