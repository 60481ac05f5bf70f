//! Detectors by kind, named as `augur eval --detector NAME` and the config's
//! `detector.name` spell them.

use std::fmt;
use std::str::FromStr;
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

/// The detectors [`build`] makes. Each is named on the command line and in the config by
/// its [`name`](DetectorKind::name), which also names its alerts and decide state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DetectorKind {
    /// `nsigma`: each service's features against their recent mean and deviation.
    NSigma,
    /// `cpu-threshold-50`: a service whose CPU is above 50 % of its quota.
    CpuThreshold50,
    /// `cpu-threshold-70`: a service whose CPU is above 70 % of its quota.
    CpuThreshold70,
    /// `seer`: the learned violation predictor.
    Seer,
    /// `sage`: counterfactual root-cause analysis.
    Sage,
    /// `fluxion`: latency forecasts from an inference graph.
    Fluxion,
    /// `evidence`: training-free root causes from each service's own signals.
    Evidence,
}

impl DetectorKind {
    /// Every detector, in the order `--detector all` runs them.
    pub const ALL: [DetectorKind; 7] = [
        DetectorKind::NSigma,
        DetectorKind::CpuThreshold50,
        DetectorKind::CpuThreshold70,
        DetectorKind::Seer,
        DetectorKind::Sage,
        DetectorKind::Fluxion,
        DetectorKind::Evidence,
    ];

    /// The name the config, the command line and the detector's alerts use.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::NSigma => "nsigma",
            DetectorKind::CpuThreshold50 => "cpu-threshold-50",
            DetectorKind::CpuThreshold70 => "cpu-threshold-70",
            DetectorKind::Seer => "seer",
            DetectorKind::Sage => "sage",
            DetectorKind::Fluxion => "fluxion",
            DetectorKind::Evidence => "evidence",
        }
    }

    /// Every name, comma-separated (for messages).
    pub fn known() -> String {
        let names: Vec<&str> = DetectorKind::ALL.iter().map(|k| k.name()).collect();
        names.join(", ")
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A detector name that isn't one of [`DetectorKind::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error(
    "unknown detector `{name}`; known detectors: {}",
    DetectorKind::known()
)]
pub struct UnknownDetector {
    pub name: String,
}

impl FromStr for DetectorKind {
    type Err = UnknownDetector;

    fn from_str(name: &str) -> Result<DetectorKind, UnknownDetector> {
        DetectorKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| UnknownDetector {
                name: name.to_string(),
            })
    }
}

impl Serialize for DetectorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for DetectorKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

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

/// Builds a detector of `kind`.
pub fn build(
    kind: DetectorKind,
    settings: &DetectorSettings,
    horizon_ms: u64,
) -> Result<Box<dyn Detector>, RegistryError> {
    build_sharing(kind, settings, horizon_ms, None)
}

/// Builds a detector of `kind`; a `fluxion` detector publishes its graph and newest
/// window on `board` (for the actuation policy's what-if query) when one is given.
pub fn build_sharing(
    kind: DetectorKind,
    settings: &DetectorSettings,
    horizon_ms: u64,
    board: Option<&Arc<GraphBoard>>,
) -> Result<Box<dyn Detector>, RegistryError> {
    match kind {
        DetectorKind::NSigma => Ok(Box::new(NSigma::new(settings.nsigma.clone(), horizon_ms))),
        DetectorKind::CpuThreshold50 => Ok(Box::new(CpuThreshold::new(0.5, horizon_ms))),
        DetectorKind::CpuThreshold70 => Ok(Box::new(CpuThreshold::new(0.7, horizon_ms))),
        DetectorKind::Evidence => Ok(Box::new(EvidenceDetector::new(settings.evidence.clone()))),
        DetectorKind::Seer => {
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
        DetectorKind::Sage => Ok(Box::new(Sage::new(settings.sage.clone()).map_err(
            |source| RegistryError::Checkpoint {
                name: "sage",
                source,
            },
        )?)),
        DetectorKind::Fluxion => {
            let fluxion = Fluxion::new(settings.fluxion.clone(), horizon_ms)
                .map_err(RegistryError::FluxionCheckpoint)?;
            Ok(Box::new(match board {
                Some(board) => fluxion.with_board(Arc::clone(board)),
                None => fluxion,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DetectorKind;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known() {
        for kind in DetectorKind::ALL {
            assert_eq!(kind.name().parse(), Ok(kind));
            assert_eq!(kind.to_string(), kind.name());
            let json = serde_json::to_string(&kind).expect("serializes");
            assert_eq!(serde_json::from_str::<DetectorKind>(&json).ok(), Some(kind));
        }
        let err = "magic".parse::<DetectorKind>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown detector `magic`; known detectors: nsigma, cpu-threshold-50, \
             cpu-threshold-70, seer, sage, fluxion, evidence"
        );
    }
}
