//! Fault kinds and fault plans: none, an explicit list from a TOML or JSON file, or a random
//! schedule drawn from the seed (non-overlapping single faults with gaps, plus occasional
//! load spikes).

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::SimError;
use super::topology::SpikeSpec;

/// What a fault does. Magnitudes:
/// - `cpu_contention`: service-time factor (e.g. 3.0), plus the hog's CPU share;
/// - `memory_contention`: service-time factor, applied with extra variance;
/// - `network_delay`: extra one-way delay per RPC leg, ms;
/// - `network_loss`: share of RPC legs that wait a 200 ms retransmission timeout;
/// - `thread_pool_shrink`: threads per replica become `round(threads / magnitude)`, at least 1;
/// - `memory_leak`: service-time factor reached at the end (grows linearly from 1);
/// - `error_fault`: share of requests that fail fast with status ERROR.
///
/// With a ramp (`FaultSpec::ramp_ms` > 0) a fault grows linearly from nothing to its full
/// magnitude over the ramp, as real contention and leaks build up, instead of stepping in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    CpuContention,
    MemoryContention,
    NetworkDelay,
    NetworkLoss,
    ThreadPoolShrink,
    MemoryLeak,
    ErrorFault,
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        FaultKind::CpuContention,
        FaultKind::MemoryContention,
        FaultKind::NetworkDelay,
        FaultKind::NetworkLoss,
        FaultKind::ThreadPoolShrink,
        FaultKind::MemoryLeak,
        FaultKind::ErrorFault,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::CpuContention => "cpu_contention",
            FaultKind::MemoryContention => "memory_contention",
            FaultKind::NetworkDelay => "network_delay",
            FaultKind::NetworkLoss => "network_loss",
            FaultKind::ThreadPoolShrink => "thread_pool_shrink",
            FaultKind::MemoryLeak => "memory_leak",
            FaultKind::ErrorFault => "error_fault",
        }
    }

    /// The resource string of the ground-truth label.
    pub fn resource(self) -> &'static str {
        match self {
            FaultKind::CpuContention => "cpu",
            FaultKind::MemoryContention | FaultKind::MemoryLeak => "memory",
            FaultKind::NetworkDelay | FaultKind::NetworkLoss => "network",
            FaultKind::ThreadPoolShrink => "threads",
            FaultKind::ErrorFault => "errors",
        }
    }

    /// A typical magnitude: strong enough to break a calibrated SLO, not absurd.
    fn random_magnitude(self, rng: &mut Xoshiro256PlusPlus) -> f64 {
        let round2 = |x: f64| (x * 100.0).round() / 100.0;
        round2(match self {
            FaultKind::CpuContention => rng.random_range(2.5..5.0),
            FaultKind::MemoryContention => rng.random_range(2.5..4.5),
            FaultKind::NetworkDelay => rng.random_range(20.0..60.0),
            FaultKind::NetworkLoss => rng.random_range(0.05..0.2),
            // Drawn from the target's thread occupancy in `RandomPlanner::next`.
            FaultKind::ThreadPoolShrink => rng.random_range(6.0..16.0),
            FaultKind::MemoryLeak => rng.random_range(4.0..8.0),
            FaultKind::ErrorFault => rng.random_range(0.1..0.4),
        })
    }
}

/// One fault to inject. Times are relative to the simulation start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    pub service: String,
    /// A replica name such as `user-service-0`; absent = every replica.
    #[serde(default)]
    pub instance: Option<String>,
    /// For network faults: only calls from this service (an edge caller → callee).
    #[serde(default)]
    pub caller: Option<String>,
    pub start_ms: u64,
    pub duration_ms: u64,
    pub magnitude: f64,
    /// The fault grows linearly to `magnitude` over this long after its start, ms
    /// (0: a step, at full strength at once). `memory_leak` always grows over its whole
    /// duration and ignores this.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ramp_ms: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// An explicit plan file:
///
/// ```toml
/// [[fault]]
/// kind = "cpu_contention"
/// service = "user-service"
/// instance = "user-service-0"   # optional
/// start_ms = 60000              # after the simulation start
/// duration_ms = 30000
/// magnitude = 4.0
/// ramp_ms = 5000                # optional: grow to full strength over 5 s
///
/// [[load_spike]]                # optional
/// start_s = 200
/// duration_s = 10
/// factor = 2.0
/// ```
///
/// or the same as JSON: `{"fault": [...], "load_spike": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplicitPlan {
    #[serde(rename = "fault", default)]
    pub faults: Vec<FaultSpec>,
    #[serde(rename = "load_spike", default)]
    pub load_spikes: Vec<SpikeSpec>,
}

/// Parameters of the random plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomPlan {
    /// Quiet time before the first fault, s.
    pub warmup_s: f64,
    /// Gap between the end of one fault and the start of the next, s (uniform range).
    pub gap_s: (f64, f64),
    /// Fault duration, s (uniform range).
    pub duration_s: (f64, f64),
    /// Probability that a gap also holds a load spike.
    pub spike_probability: f64,
    /// Probability that a fault hits one replica rather than all of them.
    pub single_replica_probability: f64,
    /// Ramp of each fault, s (uniform range); `(0, 0)` for step faults. Drawn from an RNG
    /// stream of its own, so a seed's schedule is the same with and without ramps.
    #[serde(default)]
    pub ramp_s: (f64, f64),
}

impl Default for RandomPlan {
    fn default() -> Self {
        RandomPlan {
            warmup_s: 30.0,
            gap_s: (30.0, 90.0),
            duration_s: (10.0, 40.0),
            spike_probability: 0.25,
            single_replica_probability: 0.3,
            ramp_s: (0.0, 0.0),
        }
    }
}

/// Ramp range of `random-ramp`, s.
pub const RAMP_S: (f64, f64) = (3.0, 10.0);

/// Which faults to inject.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum FaultPlan {
    #[default]
    None,
    Explicit(ExplicitPlan),
    Random(RandomPlan),
}

/// The fault plan a command line or config names: `none`, `random` (step faults),
/// `random-ramp` (the same schedule, each fault ramping up over 3–10 s), or the path of a
/// TOML or JSON plan file (see [`ExplicitPlan`]). Any other text is a file's path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FaultChoice {
    /// `none` (also the empty text).
    None,
    /// `random`.
    #[default]
    Random,
    /// `random-ramp`.
    RandomRamp,
    /// A plan file, `.json` or TOML.
    File(std::path::PathBuf),
}

impl std::str::FromStr for FaultChoice {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<FaultChoice, Self::Err> {
        Ok(match text {
            "none" | "" => FaultChoice::None,
            "random" => FaultChoice::Random,
            "random-ramp" => FaultChoice::RandomRamp,
            path => FaultChoice::File(path.into()),
        })
    }
}

impl std::fmt::Display for FaultChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FaultChoice::None => f.write_str("none"),
            FaultChoice::Random => f.write_str("random"),
            FaultChoice::RandomRamp => f.write_str("random-ramp"),
            FaultChoice::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Serialize for FaultChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FaultChoice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let Ok(choice) = text.parse();
        Ok(choice)
    }
}

impl FaultPlan {
    /// The plan `choice` names, a file read and parsed.
    pub fn load(choice: &FaultChoice) -> Result<FaultPlan, SimError> {
        match choice {
            FaultChoice::None => Ok(FaultPlan::None),
            FaultChoice::Random => Ok(FaultPlan::Random(RandomPlan::default())),
            FaultChoice::RandomRamp => Ok(FaultPlan::Random(RandomPlan {
                ramp_s: RAMP_S,
                ..RandomPlan::default()
            })),
            FaultChoice::File(path) => {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
                    path: name.clone(),
                    source,
                })?;
                let plan = if name.ends_with(".json") {
                    FaultPlan::from_json_str(&text)
                } else {
                    FaultPlan::from_toml_str(&text)
                };
                plan.map_err(|error| SimError::InFile {
                    path: name,
                    error: Box::new(error),
                })
            }
        }
    }

    /// The plan named by `arg`, read as a [`FaultChoice`].
    pub fn parse(arg: &str) -> Result<FaultPlan, SimError> {
        let Ok(choice) = arg.parse();
        FaultPlan::load(&choice)
    }

    pub fn from_toml_str(s: &str) -> Result<FaultPlan, SimError> {
        let plan: ExplicitPlan = toml::from_str(s).map_err(|e| SimError::Toml(e.to_string()))?;
        Ok(FaultPlan::Explicit(plan))
    }

    pub fn from_json_str(s: &str) -> Result<FaultPlan, SimError> {
        let plan: ExplicitPlan = serde_json::from_str(s)?;
        Ok(FaultPlan::Explicit(plan))
    }
}

/// What the random planner decided next (times relative to the start, ms).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Planned {
    Fault(FaultSpec),
    Spike(SpikeSpec),
}

/// A service the random plan may hit.
#[derive(Clone, Debug)]
pub(crate) struct FaultTarget {
    pub service: String,
    pub replicas: u32,
    pub threads: u32,
    /// How often it is picked (its share of the traffic, with a floor).
    pub weight: f64,
    /// Expected busy threads per replica at the topology's load.
    pub occupancy: f64,
}

/// Draws the random schedule lazily, on its own RNG stream so the schedule depends only on
/// the seed, never on how the run is chunked.
#[derive(Debug)]
pub(crate) struct RandomPlanner {
    plan: RandomPlan,
    rng: Xoshiro256PlusPlus,
    /// Ramps only: the main stream stays the same with and without them.
    ramp_rng: Xoshiro256PlusPlus,
    /// Services a fault may hit (non-entry).
    targets: Vec<FaultTarget>,
    /// Relative time (ms) from which the next gap starts.
    cursor_ms: u64,
}

impl RandomPlanner {
    pub(crate) fn new(plan: RandomPlan, seed: u64, targets: Vec<FaultTarget>) -> Self {
        let cursor_ms = (plan.warmup_s * 1000.0).max(0.0) as u64;
        RandomPlanner {
            plan,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5eed_fa17_0000_0001),
            ramp_rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5eed_7a3b_0000_0002),
            targets,
            cursor_ms,
        }
    }

    /// Relative time up to which the schedule has been drawn.
    pub(crate) fn cursor_ms(&self) -> u64 {
        self.cursor_ms
    }

    /// Draws the next gap (maybe with a spike in it) and the fault after it.
    pub(crate) fn next(&mut self) -> Vec<Planned> {
        let mut out = Vec::new();
        let uniform = |rng: &mut Xoshiro256PlusPlus, (lo, hi): (f64, f64)| {
            if hi > lo {
                rng.random_range(lo..hi)
            } else {
                lo
            }
        };
        let gap_ms = (uniform(&mut self.rng, self.plan.gap_s) * 1000.0) as u64;
        if self.rng.random::<f64>() < self.plan.spike_probability && gap_ms > 20_000 {
            // A spike inside the gap, clear of both faults by at least 5 s.
            let duration_ms = self.rng.random_range(5_000..15_000u64).min(gap_ms - 10_000);
            let start_ms =
                self.cursor_ms + 5_000 + self.rng.random_range(0..=(gap_ms - 10_000 - duration_ms));
            let factor = (self.rng.random_range(1.4..2.0f64) * 100.0).round() / 100.0;
            out.push(Planned::Spike(SpikeSpec {
                start_s: start_ms as f64 / 1000.0,
                duration_s: duration_ms as f64 / 1000.0,
                factor,
            }));
        }
        let start_ms = self.cursor_ms + gap_ms;
        let duration_ms = (uniform(&mut self.rng, self.plan.duration_s) * 1000.0) as u64;
        if !self.targets.is_empty() {
            let mut kind = self.random_kind();
            // A smaller thread pool only hurts where threads are busy: shrink a pool that
            // holds most of a busy thread per replica, else contend for CPU instead.
            let busy_pools: Vec<usize> = (0..self.targets.len())
                .filter(|&i| self.targets[i].occupancy >= 0.8)
                .collect();
            if kind == FaultKind::ThreadPoolShrink && busy_pools.is_empty() {
                kind = FaultKind::CpuContention;
            }
            let candidates: Vec<usize> = if kind == FaultKind::ThreadPoolShrink {
                busy_pools
            } else {
                (0..self.targets.len()).collect()
            };
            let total: f64 = candidates.iter().map(|&i| self.targets[i].weight).sum();
            let mut x = self.rng.random::<f64>() * total;
            let mut pick = candidates[candidates.len() - 1];
            for &i in &candidates {
                if x < self.targets[i].weight {
                    pick = i;
                    break;
                }
                x -= self.targets[i].weight;
            }
            let target = self.targets[pick].clone();
            let (service, replicas) = (target.service, target.replicas);
            let instance = (replicas > 1
                && self.rng.random::<f64>() < self.plan.single_replica_probability)
                .then(|| format!("{service}-{}", self.rng.random_range(0..replicas)));
            let magnitude = if kind == FaultKind::ThreadPoolShrink {
                // Leave fewer threads than are busy on average, so the queue grows.
                let left = (target.occupancy * self.rng.random_range(0.4..0.8))
                    .floor()
                    .max(1.0);
                (f64::from(target.threads) / left).max(1.0)
            } else {
                kind.random_magnitude(&mut self.rng)
            };
            let (lo, hi) = self.plan.ramp_s;
            let ramp_ms = if hi > 0.0 {
                (uniform(&mut self.ramp_rng, (lo, hi)) * 1000.0).min(duration_ms as f64) as u64
            } else {
                0
            };
            out.push(Planned::Fault(FaultSpec {
                kind,
                service,
                instance,
                caller: None,
                start_ms,
                duration_ms,
                magnitude,
                ramp_ms,
            }));
        }
        self.cursor_ms = start_ms + duration_ms;
        out
    }

    /// Weighted towards latency faults.
    fn random_kind(&mut self) -> FaultKind {
        const WEIGHTS: [(FaultKind, f64); 7] = [
            (FaultKind::CpuContention, 0.25),
            (FaultKind::MemoryContention, 0.15),
            (FaultKind::NetworkDelay, 0.15),
            (FaultKind::NetworkLoss, 0.1),
            (FaultKind::ThreadPoolShrink, 0.1),
            (FaultKind::MemoryLeak, 0.1),
            (FaultKind::ErrorFault, 0.15),
        ];
        let mut x = self.rng.random::<f64>();
        for (kind, w) in WEIGHTS {
            if x < w {
                return kind;
            }
            x -= w;
        }
        FaultKind::CpuContention
    }
}
