//! Scripted scenarios: named sequences of deployment changes built for a topology.
//!
//! In: a scenario name and a topology. Out: the changes (with their times) and the length
//! of simulated time the scenario needs. State: none.
//!
//! `scale-replace` (Fluxion's adaptation experiment): one step every
//! [`SCALE_REPLACE_PERIOD_S`] seconds, the first after a warm-up of the same length, so each
//! change has time to settle before the next:
//!
//! 1. an RPS change: the offered load × [`SCALE_REPLACE_RPS_FACTOR`];
//! 2. scale-out of 1 service (+1 replica): the busiest non-entry service;
//! 3. scale-out of 2 services (+1 each): the 2nd and 3rd busiest;
//! 4. scale-out of 3 services (+1 each): the 4th to 6th busiest;
//! 5. scale-out of all services ×3 (each gets twice its current replica count added);
//! 6. replacing a service: the busiest non-entry service's new version, service time ×
//!    [`SCALE_REPLACE_SERVICE_TIME_FACTOR`].
//!
//! The offered load swings sinusoidally by ±[`SCALE_REPLACE_SWING`] with a period of
//! [`SCALE_REPLACE_SWING_PERIOD_S`] throughout, so the latency moves within each step and a
//! forecast has something to forecast (at a constant load a model that predicts the
//! period's mean would be hard to beat).
//!
//! `load-ramp` (a flash crowd, for the `latency_forecast` alert): after a warm-up of
//! [`LOAD_RAMP_WARMUP_S`], [`LOAD_RAMP_CYCLES`] cycles of: the offered load rising in
//! equal factors every [`LOAD_RAMP_STEP_S`] for [`LOAD_RAMP_RISE_S`] up to
//! [`LOAD_RAMP_PEAK`] × the topology's load, held for [`LOAD_RAMP_HOLD_S`], then back to
//! the topology's load for [`LOAD_RAMP_REST_S`]. The peak is past saturation, so every
//! cycle ends in a violation that the rising load announces.
//!
//! `add-remove` (Fluxion's graph updates from the dependency graph): after the same warm-up,
//! a new service `<callee>-proxy` ([`ADD_REMOVE_PROXY_MS`] per call) goes between the
//! busiest service that calls a leaf and that leaf; one period later another leaf (the
//! busiest one left) is removed — its callers stop calling it; under the same load swing;
//! three periods.
//!
//! "Busiest" ranks services by expected thread occupancy per replica (calls per request ×
//! thread-seconds held × offered rate / replicas / threads) at the topology's own load, ties
//! by name, so the choice is deterministic and independent of the seed.

use super::SimError;
use super::changes::{ChangeAction, ChangeSpec};
use super::model::Model;
use super::topology::Topology;

/// Seconds between the steps of `scale-replace` (and of its warm-up before the first).
pub const SCALE_REPLACE_PERIOD_S: u64 = 240;
/// The offered load's factor at the RPS change.
pub const SCALE_REPLACE_RPS_FACTOR: f64 = 1.4;
/// The replaced service's service-time factor.
pub const SCALE_REPLACE_SERVICE_TIME_FACTOR: f64 = 1.6;

/// Amplitude of the load swing, as a fraction of the mean.
pub const SCALE_REPLACE_SWING: f64 = 0.3;
/// Period of the load swing, s.
pub const SCALE_REPLACE_SWING_PERIOD_S: f64 = 80.0;

/// `load-ramp`: warm-up before the first rise, s.
pub const LOAD_RAMP_WARMUP_S: u64 = 180;
/// `load-ramp`: length of a rise, s, and the time between its steps.
pub const LOAD_RAMP_RISE_S: u64 = 90;
pub const LOAD_RAMP_STEP_S: u64 = 5;
/// `load-ramp`: the peak as a multiple of the topology's load. Past saturation for the
/// built-in topologies: hotel-reservation's p90 leaves the ms range near 2.2×,
/// online-boutique's near 2.6× (measured on seed 11's forecast tables).
pub const LOAD_RAMP_PEAK: f64 = 3.5;
/// `load-ramp`: time at the peak, then at the topology's load, s.
pub const LOAD_RAMP_HOLD_S: u64 = 20;
pub const LOAD_RAMP_REST_S: u64 = 130;
/// `load-ramp`: cycles.
pub const LOAD_RAMP_CYCLES: u64 = 3;

/// `add-remove`: service time of the added proxy, ms.
pub const ADD_REMOVE_PROXY_MS: f64 = 2.0;

/// The built-in scenarios, named as `--scenario` spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScenarioKind {
    /// `scale-replace`: an RPS change, scale-outs, a replaced service.
    ScaleReplace,
    /// `load-ramp`: three flash crowds past saturation.
    LoadRamp,
    /// `add-remove`: a proxy added in front of a leaf, then another leaf removed.
    AddRemove,
}

impl ScenarioKind {
    /// Every built-in scenario.
    pub const ALL: [ScenarioKind; 3] = [
        ScenarioKind::ScaleReplace,
        ScenarioKind::LoadRamp,
        ScenarioKind::AddRemove,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::ScaleReplace => "scale-replace",
            ScenarioKind::LoadRamp => "load-ramp",
            ScenarioKind::AddRemove => "add-remove",
        }
    }
}

impl std::fmt::Display for ScenarioKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ScenarioKind {
    type Err = SimError;

    fn from_str(name: &str) -> Result<ScenarioKind, SimError> {
        ScenarioKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = ScenarioKind::ALL.iter().map(|k| k.name()).collect();
                SimError::Invalid(format!(
                    "unknown scenario {name:?} (known: {})",
                    known.join(", ")
                ))
            })
    }
}

/// A scenario: the topology to run (the given one, its load possibly reshaped), its
/// changes and the simulated time it needs, ms.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub topology: Topology,
    pub changes: Vec<ChangeSpec>,
    pub duration_ms: u64,
}

/// Builds scenario `kind` for `topology`.
pub fn scenario(kind: ScenarioKind, topology: &Topology) -> Result<Scenario, SimError> {
    match kind {
        ScenarioKind::ScaleReplace => scale_replace(topology),
        ScenarioKind::LoadRamp => load_ramp(topology),
        ScenarioKind::AddRemove => add_remove(topology),
    }
}

/// The service of the topology's first request: where load changes apply.
fn entry_name(model: &Model) -> Result<String, SimError> {
    let entry = model
        .requests
        .first()
        .ok_or_else(|| SimError::Invalid("the topology has no requests".into()))?;
    Ok(model.services[entry.service as usize].name.clone())
}

/// The topology under the load swing of `scale-replace` and `add-remove`.
fn swinging(topology: &Topology) -> Result<Topology, SimError> {
    let mut spec = topology.spec().clone();
    spec.load.diurnal_amplitude = SCALE_REPLACE_SWING;
    spec.load.diurnal_period_s = SCALE_REPLACE_SWING_PERIOD_S;
    Topology::from_spec(spec)
}

/// Non-entry services, busiest first (see the module docs).
fn busiest_first(model: &Model, topology: &Topology) -> Vec<String> {
    let entries: Vec<u32> = model.requests.iter().map(|r| r.service).collect();
    let (_, thread_s) = model.load_profile();
    let rate = topology.spec().load.rate_per_s;
    let mut ranked: Vec<(f64, String)> = model
        .services
        .iter()
        .enumerate()
        .filter(|(i, _)| !entries.contains(&(*i as u32)))
        .map(|(i, s)| {
            let replicas = f64::from(model.initial_replicas[i].max(1));
            let threads = f64::from(s.threads.max(1));
            (rate * thread_s[i] / replicas / threads, s.name.clone())
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    ranked.into_iter().map(|(_, n)| n).collect()
}

fn add_remove(topology: &Topology) -> Result<Scenario, SimError> {
    let model = Model::compile(topology)?;
    let busiest = busiest_first(&model, topology);
    let index = |name: &str| model.services.iter().position(|s| s.name == name);
    let is_leaf = |i: usize| model.services[i].ops.iter().all(|o| o.stages.is_empty());
    let callees_of = |i: usize| -> Vec<usize> {
        let mut out: Vec<usize> = model.services[i]
            .ops
            .iter()
            .flat_map(|o| o.stages.iter().flatten())
            .map(|c| c.service as usize)
            .collect();
        out.sort_by(|a, b| model.services[*a].name.cmp(&model.services[*b].name));
        out.dedup();
        out
    };
    // The proxy: between the busiest service calling a leaf and that leaf.
    let (caller, leaf) = busiest
        .iter()
        .filter_map(|name| {
            let i = index(name)?;
            let leaf = callees_of(i).into_iter().find(|c| is_leaf(*c))?;
            Some((name.clone(), model.services[leaf].name.clone()))
        })
        .next()
        .ok_or_else(|| {
            SimError::Invalid(format!(
                "scenario add-remove needs a service that calls a leaf; {} has none",
                topology.name()
            ))
        })?;
    // The removed leaf: the busiest other leaf.
    let removed = busiest
        .iter()
        .find(|name| **name != leaf && index(name).is_some_and(is_leaf))
        .cloned()
        .ok_or_else(|| {
            SimError::Invalid(format!(
                "scenario add-remove needs two leaves, {} has fewer",
                topology.name()
            ))
        })?;
    let period_ms = SCALE_REPLACE_PERIOD_S * 1000;
    let changes = vec![
        ChangeSpec {
            service: format!("{leaf}-proxy"),
            at_ms: period_ms,
            action: ChangeAction::AddService {
                caller,
                callee: leaf,
                service_time_ms: ADD_REMOVE_PROXY_MS,
                replicas: 1,
            },
        },
        ChangeSpec {
            service: removed,
            at_ms: 2 * period_ms,
            action: ChangeAction::RemoveService,
        },
    ];
    Ok(Scenario {
        topology: swinging(topology)?,
        changes,
        duration_ms: 3 * period_ms,
    })
}

fn scale_replace(topology: &Topology) -> Result<Scenario, SimError> {
    let model = Model::compile(topology)?;
    let entry_name = entry_name(&model)?;
    let busiest = busiest_first(&model, topology);
    if busiest.len() < 6 {
        return Err(SimError::Invalid(format!(
            "scenario scale-replace needs at least 6 non-entry services, {} has {}",
            topology.name(),
            busiest.len()
        )));
    }
    let period_ms = SCALE_REPLACE_PERIOD_S * 1000;
    let mut replicas: Vec<(String, u32)> = model
        .services
        .iter()
        .zip(&model.initial_replicas)
        .map(|(s, r)| (s.name.clone(), *r))
        .collect();
    let mut changes = vec![ChangeSpec {
        service: entry_name,
        at_ms: period_ms,
        action: ChangeAction::Rps {
            factor: SCALE_REPLACE_RPS_FACTOR,
        },
    }];
    let mut scale = |step: u64, names: &[String], changes: &mut Vec<ChangeSpec>| {
        for name in names {
            changes.push(ChangeSpec {
                service: name.clone(),
                at_ms: step * period_ms,
                action: ChangeAction::ScaleOut { replicas: 1 },
            });
            if let Some(r) = replicas.iter_mut().find(|(n, _)| n == name) {
                r.1 += 1;
            }
        }
    };
    scale(2, &busiest[0..1], &mut changes);
    scale(3, &busiest[1..3], &mut changes);
    scale(4, &busiest[3..6], &mut changes);
    for (name, r) in &replicas {
        changes.push(ChangeSpec {
            service: name.clone(),
            at_ms: 5 * period_ms,
            action: ChangeAction::ScaleOut { replicas: 2 * r },
        });
    }
    changes.push(ChangeSpec {
        service: busiest[0].clone(),
        at_ms: 6 * period_ms,
        action: ChangeAction::Replace {
            service_time_factor: SCALE_REPLACE_SERVICE_TIME_FACTOR,
        },
    });
    Ok(Scenario {
        topology: swinging(topology)?,
        changes,
        duration_ms: 7 * period_ms,
    })
}

fn load_ramp(topology: &Topology) -> Result<Scenario, SimError> {
    let entry_name = entry_name(&Model::compile(topology)?)?;
    let steps = LOAD_RAMP_RISE_S / LOAD_RAMP_STEP_S;
    let step_factor = LOAD_RAMP_PEAK.powf(1.0 / steps as f64);
    let cycle_s = LOAD_RAMP_RISE_S + LOAD_RAMP_HOLD_S + LOAD_RAMP_REST_S;
    let mut changes = Vec::new();
    for cycle in 0..LOAD_RAMP_CYCLES {
        let start_s = LOAD_RAMP_WARMUP_S + cycle * cycle_s;
        for k in 1..=steps {
            changes.push(ChangeSpec {
                service: entry_name.clone(),
                at_ms: (start_s + k * LOAD_RAMP_STEP_S) * 1000,
                action: ChangeAction::Rps {
                    factor: step_factor,
                },
            });
        }
        changes.push(ChangeSpec {
            service: entry_name.clone(),
            at_ms: (start_s + LOAD_RAMP_RISE_S + LOAD_RAMP_HOLD_S) * 1000,
            action: ChangeAction::Rps {
                factor: 1.0 / LOAD_RAMP_PEAK,
            },
        });
    }
    Ok(Scenario {
        topology: topology.clone(),
        changes,
        duration_ms: (LOAD_RAMP_WARMUP_S + LOAD_RAMP_CYCLES * cycle_s) * 1000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_replace_has_the_sequence() {
        let topology = Topology::builtin("hotel-reservation").expect("built-in");
        let s = scenario(ScenarioKind::ScaleReplace, &topology).expect("scenario");
        let at = |step: u64| -> Vec<&ChangeSpec> {
            s.changes
                .iter()
                .filter(|c| c.at_ms == step * SCALE_REPLACE_PERIOD_S * 1000)
                .collect()
        };
        assert!(matches!(at(1)[0].action, ChangeAction::Rps { .. }));
        assert_eq!(at(2).len(), 1);
        assert_eq!(at(3).len(), 2);
        assert_eq!(at(4).len(), 3);
        let services = topology.spec().services.len();
        assert_eq!(at(5).len(), services);
        assert!(matches!(at(6)[0].action, ChangeAction::Replace { .. }));
        // The busiest service got +1 at step 2, so ×3 adds twice its new count.
        let first = &at(2)[0].service;
        let initial = topology
            .spec()
            .services
            .iter()
            .find(|x| &x.name == first)
            .map(|x| x.replicas)
            .expect("service");
        let all = at(5)
            .into_iter()
            .find(|c| &c.service == first)
            .expect("scaled");
        assert_eq!(
            all.action,
            ChangeAction::ScaleOut {
                replicas: 2 * (initial + 1)
            }
        );
        assert!((s.topology.spec().load.diurnal_amplitude - SCALE_REPLACE_SWING).abs() < 1e-12);
        assert!("nope".parse::<ScenarioKind>().is_err());
        for kind in ScenarioKind::ALL {
            assert_eq!(kind.name().parse::<ScenarioKind>().ok(), Some(kind));
        }
    }

    #[test]
    fn add_remove_adds_a_proxy_then_removes_another_leaf() {
        let topology = Topology::builtin("hotel-reservation").expect("built-in");
        let s = scenario(ScenarioKind::AddRemove, &topology).expect("scenario");
        assert_eq!(s.changes.len(), 2);
        let ChangeAction::AddService { callee, .. } = &s.changes[0].action else {
            panic!("first an added service: {:?}", s.changes[0]);
        };
        assert_eq!(s.changes[0].service, format!("{callee}-proxy"));
        assert_eq!(s.changes[1].action, ChangeAction::RemoveService);
        assert_ne!(&s.changes[1].service, callee);
        assert!(s.changes.iter().all(|c| c.at_ms < s.duration_ms));
    }

    #[test]
    fn load_ramp_rises_past_saturation_and_comes_back() {
        let topology = Topology::builtin("hotel-reservation").expect("built-in");
        let s = scenario(ScenarioKind::LoadRamp, &topology).expect("scenario");
        let per_cycle = (LOAD_RAMP_RISE_S / LOAD_RAMP_STEP_S + 1) as usize;
        assert_eq!(s.changes.len(), per_cycle * LOAD_RAMP_CYCLES as usize);
        let mut load = 1.0;
        let mut peak: f64 = 1.0;
        for c in &s.changes {
            let ChangeAction::Rps { factor } = c.action else {
                panic!("only load changes");
            };
            load *= factor;
            peak = peak.max(load);
            assert!(c.at_ms < s.duration_ms);
        }
        assert!(
            (load - 1.0).abs() < 1e-9,
            "ends at the topology's load: {load}"
        );
        assert!((peak - LOAD_RAMP_PEAK).abs() < 1e-9, "peak {peak}");
    }
}
