//! augur-models: detectors and models behind the [`augur_operators::Detector`] boundary.
//!
//! One folder per model. Statistical: [`baselines`] (`nsigma` and the CPU-threshold
//! autoscaler rules that the papers compare against) and [`evidence`] (training-free root
//! causes from each service's own signals against its recent past). Learned (libtorch via
//! tch): [`seer`] (violation prediction), [`sage`] (counterfactual root-cause analysis) and
//! [`fluxion`] (latency forecasts from an inference graph); they share the versioned
//! [`checkpoint`] files and the [`device`] choice. [`registry`] builds any detector by
//! name. The checkpoints shipped with augur are embedded in the binary ([`shipped`]).

pub mod baselines;
pub mod checkpoint;
pub mod device;
pub mod evidence;
pub mod fluxion;
pub mod registry;
pub mod runtime;
pub mod sage;
pub mod seer;
pub mod shipped;

pub use registry::{
    DetectorKind, DetectorSettings, RegistryError, UnknownDetector, build, build_sharing,
};

/// Tests that train libtorch models hold this lock: libtorch's weight initialisation draws
/// from one process-wide generator, so parallel tests would make each other's seeds (and
/// results) depend on scheduling.
#[cfg(test)]
pub(crate) fn torch_test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
