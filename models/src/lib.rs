//! augur-models: detectors and models behind the [`augur_operators::Detector`] boundary.
//!
//! For now the statistical detectors: `nsigma` (the stand-in predictor) and the
//! CPU-threshold autoscaler rules that the papers compare against.

pub mod cpu_threshold;
pub mod nsigma;
pub mod registry;

pub use registry::{DETECTOR_NAMES, DetectorSettings, RegistryError, build};
