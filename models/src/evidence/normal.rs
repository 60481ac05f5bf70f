//! A learned normal: the pooled signals of an application's fault-free telemetry, and its
//! log template miners, saved as one JSON file (`normal-<name>.json`).
//!
//! `augur train --model normal --input DIR` learns one from any OTLP directory of the
//! application, no labels; [`super::diagnose_with_normal`] adds it to the minutes before
//! the moment it explains, so a diagnosis has a normal even when the telemetry before the
//! incident is short or missing. The miners are restored before a replay, so the template
//! ids of the replay are the normal's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use augur_operators::{EventTime, WindowSnapshot};
use serde::{Deserialize, Serialize};

use super::Range;

/// Windows with requests a normal needs (30 s of traffic in 1 s windows).
pub const MIN_NORMAL_WINDOWS: usize = 30;

/// Share of a replay's services a normal must know to be used for it.
pub const MIN_OVERLAP: f64 = 0.5;

/// Why a normal could not be learned, read or written.
#[derive(Debug, thiserror::Error)]
pub enum NormalError {
    #[error(
        "no traces: {windows} windows of telemetry but no requests in them; the normal is learned from spans (traces.otlp.jsonl[.zst|.gz] or the spans topic), metrics and logs alone are not enough"
    )]
    NoTraces { windows: usize },
    #[error(
        "too little data: {windows} windows with requests, at least {needed} needed ({needed} s of traffic in 1 s windows)"
    )]
    TooLittle { windows: usize, needed: usize },
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a learned normal")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: the template miner of {service} is not hex")]
    Miner { path: PathBuf, service: String },
}

/// A learned normal; see the module docs.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalProfile {
    pub name: String,
    /// Every service with requests, metrics or logs in the data it was learned from.
    pub services: Vec<String>,
    /// Windows with requests.
    pub windows: usize,
    /// The event times it covers (first window start, last window end), ms.
    pub from_ms: EventTime,
    pub to_ms: EventTime,
    range: Range,
    /// Per service, its log template miner's state, hex.
    miners: BTreeMap<String, String>,
}

impl NormalProfile {
    /// Learns a normal from `windows` (and the miners that mined their log templates).
    pub fn learn(
        name: &str,
        windows: &[WindowSnapshot],
        miners: &BTreeMap<String, Vec<u8>>,
    ) -> Result<NormalProfile, NormalError> {
        let mut range = Range::of(windows.iter());
        // Memory in use and disk rates depend on each instance's age and on the pods of the
        // day: levels of other days are no normal for them. They are judged against the
        // minutes before only.
        range.memory.clear();
        range.disk.clear();
        if range.windows == 0 {
            return Err(NormalError::NoTraces {
                windows: windows.len(),
            });
        }
        if range.windows < MIN_NORMAL_WINDOWS {
            return Err(NormalError::TooLittle {
                windows: range.windows,
                needed: MIN_NORMAL_WINDOWS,
            });
        }
        Ok(NormalProfile {
            name: name.to_string(),
            services: range.services().into_iter().map(String::from).collect(),
            windows: range.windows,
            from_ms: windows
                .first()
                .map_or(0, |w| w.window_end.saturating_sub(w.window_ms)),
            to_ms: windows.last().map_or(0, |w| w.window_end),
            range,
            miners: miners
                .iter()
                .map(|(s, bytes)| (s.clone(), hex::encode(bytes)))
                .collect(),
        })
    }

    /// The file a normal named `name` is saved as.
    pub fn file_name(name: &str) -> String {
        format!("normal-{name}.json")
    }

    /// Writes it into `dir` (created if needed); returns the path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, NormalError> {
        let path = dir.join(Self::file_name(&self.name));
        let io = |source| NormalError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let json = serde_json::to_vec(self).map_err(|source| NormalError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, json).map_err(io)?;
        Ok(path)
    }

    pub fn load(path: &Path) -> Result<NormalProfile, NormalError> {
        let bytes = std::fs::read(path).map_err(|source| NormalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| NormalError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The share of `services` this normal knows.
    pub fn overlap(&self, services: &BTreeSet<String>) -> f64 {
        if services.is_empty() {
            return 0.0;
        }
        let known = services
            .iter()
            .filter(|s| self.services.binary_search(s).is_ok())
            .count();
        known as f64 / services.len() as f64
    }

    /// The normal in `dir` (`normal-*.json`) that knows the largest share of `services`,
    /// if it knows at least [`MIN_OVERLAP`] of them, with that share. A missing directory
    /// holds none; a file that doesn't read is an error.
    pub fn find(
        dir: &Path,
        services: &BTreeSet<String>,
    ) -> Result<Option<(PathBuf, NormalProfile, f64)>, NormalError> {
        let mut best: Option<(PathBuf, NormalProfile, f64)> = None;
        for path in Self::paths(dir)? {
            let profile = NormalProfile::load(&path)?;
            let overlap = profile.overlap(services);
            if overlap >= MIN_OVERLAP && best.as_ref().is_none_or(|b| overlap > b.2) {
                best = Some((path, profile, overlap));
            }
        }
        Ok(best)
    }

    /// The normal a replay of an application's telemetry will most likely be judged
    /// against, before all of it is read: the one named `name` (if saved in `dir`), else the
    /// only one in `dir`, else the one [`NormalProfile::find`] takes for `seen` (services
    /// from a first look at the input; none when nothing was looked at). `find` on all the
    /// services read confirms it or not.
    pub fn guess(
        dir: &Path,
        name: Option<&str>,
        seen: &BTreeSet<String>,
    ) -> Result<Option<(PathBuf, NormalProfile)>, NormalError> {
        let paths = Self::paths(dir)?;
        let named = name.map(|n| dir.join(Self::file_name(n)));
        let path = match named {
            Some(p) if paths.contains(&p) => p,
            _ if paths.len() == 1 => paths[0].clone(),
            _ if !seen.is_empty() => {
                return Ok(Self::find(dir, seen)?.map(|(path, profile, _)| (path, profile)));
            }
            _ => return Ok(None),
        };
        let profile = Self::load(&path)?;
        Ok(Some((path, profile)))
    }

    /// The normals saved in `dir` (`normal-*.json`), sorted; none for a missing directory.
    fn paths(dir: &Path) -> Result<Vec<PathBuf>, NormalError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(NormalError::Io {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("normal-") && n.ends_with(".json"))
            })
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// Whether it holds log template miners (the data it was learned from had logs).
    pub fn has_miners(&self) -> bool {
        !self.miners.is_empty()
    }

    /// The log template miners' states, to restore before a replay.
    pub fn miner_snapshots(&self, path: &Path) -> Result<BTreeMap<String, Vec<u8>>, NormalError> {
        self.miners
            .iter()
            .map(|(service, h)| {
                hex::decode(h)
                    .map(|bytes| (service.clone(), bytes))
                    .map_err(|_| NormalError::Miner {
                        path: path.to_path_buf(),
                        service: service.clone(),
                    })
            })
            .collect()
    }

    pub(super) fn range(&self) -> &Range {
        &self.range
    }
}
