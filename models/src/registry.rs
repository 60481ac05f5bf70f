//! Detectors by name, as `augur eval --detector NAME` and the config's `detector.name` use them.

use std::sync::Arc;

use augur_operators::Detector;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::baselines::cpu_threshold::CpuThreshold;
use crate::baselines::nsigma::{NSigma, NSigmaConfig};
use crate::evidence::{EvidenceDetector, EvidenceDetectorConfig};
use crate::fluxion::board::GraphBoard;
use crate::fluxion::detector::{Fluxion, FluxionConfig};
use crate::sage::{Sage, SageConfig};
use crate::seer::{Seer, SeerConfig};

/// Names accepted by [`build`].
pub const DETECTOR_NAMES: &[&str] = &[
    "nsigma",
    "cpu-threshold-50",
    "cpu-threshold-70",
    "seer",
    "sage",
    "fluxion",
    "evidence",
];

/// Settings of every detector; each reads its own section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorSettings {
    pub nsigma: NSigmaConfig,
    pub seer: SeerConfig,
    pub sage: SageConfig,
    pub fluxion: FluxionConfig,
    pub evidence: EvidenceDetectorConfig,
}

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("unknown detector `{name}`; known detectors: {}", DETECTOR_NAMES.join(", "))]
    Unknown { name: String },
    #[error("detector `{name}`")]
    Checkpoint {
        name: &'static str,
        source: crate::checkpoint::CheckpointError,
    },
    #[error("detector `{name}`: {source}")]
    Device {
        name: &'static str,
        source: crate::device::DeviceError,
    },
    #[error("detector `fluxion`: checkpoint")]
    FluxionCheckpoint(#[source] std::io::Error),
}

/// Builds the detector called `name`.
pub fn build(
    name: &str,
    settings: &DetectorSettings,
    horizon_ms: u64,
) -> Result<Box<dyn Detector>, RegistryError> {
    build_sharing(name, settings, horizon_ms, None)
}

/// Builds the detector called `name`; a `fluxion` detector publishes its graph and newest
/// window on `board` (for the actuation policy's what-if query) when one is given.
pub fn build_sharing(
    name: &str,
    settings: &DetectorSettings,
    horizon_ms: u64,
    board: Option<&Arc<GraphBoard>>,
) -> Result<Box<dyn Detector>, RegistryError> {
    match name {
        "nsigma" => Ok(Box::new(NSigma::new(settings.nsigma.clone(), horizon_ms))),
        "cpu-threshold-50" => Ok(Box::new(CpuThreshold::new(0.5, horizon_ms))),
        "cpu-threshold-70" => Ok(Box::new(CpuThreshold::new(0.7, horizon_ms))),
        "evidence" => Ok(Box::new(EvidenceDetector::new(settings.evidence.clone()))),
        "seer" => {
            // A device that isn't there (`cuda:0` without a GPU) is a config error, said
            // at start, not a fallback discovered on the first window.
            crate::device::resolve(settings.seer.device).map_err(|source| {
                RegistryError::Device {
                    name: "seer",
                    source,
                }
            })?;
            Ok(Box::new(
                Seer::new(settings.seer.clone(), horizon_ms).map_err(|source| {
                    RegistryError::Checkpoint {
                        name: "seer",
                        source,
                    }
                })?,
            ))
        }
        "sage" => Ok(Box::new(Sage::new(settings.sage.clone()).map_err(
            |source| RegistryError::Checkpoint {
                name: "sage",
                source,
            },
        )?)),
        "fluxion" => {
            let fluxion = Fluxion::new(settings.fluxion.clone(), horizon_ms)
                .map_err(RegistryError::FluxionCheckpoint)?;
            Ok(Box::new(match board {
                Some(board) => fluxion.with_board(Arc::clone(board)),
                None => fluxion,
            }))
        }
        _ => Err(RegistryError::Unknown {
            name: name.to_string(),
        }),
    }
}
