//! Deployment changes on a schedule (scale out and in, a new version, a service added or
//! removed, a new request rate), checked before the run and applied at their times.

use std::collections::HashSet;

use super::super::changes::{ChangeAction, ChangeSpec};
use super::super::labels::ChangeLabel;
use super::super::model::{CallModel, FIRST_VERSION, OpModel, ServiceModel, next_version};
use super::{MS, SimError, Simulator};

#[derive(Debug, Default)]
pub(super) struct Changes {
    /// Every scripted change with its time, ns, in time order.
    pub(super) scheduled: Vec<(u64, ChangeSpec)>,
    /// The next of `scheduled` to apply.
    pub(super) next: usize,
    /// What was applied, scripted or commanded at runtime, for the labels.
    pub(super) applied: Vec<ChangeLabel>,
}

impl Changes {
    /// The time of the next scripted change; `u64::MAX` when there is none.
    pub(super) fn next_ns(&self) -> u64 {
        self.scheduled.get(self.next).map_or(u64::MAX, |c| c.0)
    }
}

impl Simulator {
    pub(super) fn validate_changes(&self, changes: &[ChangeSpec]) -> Result<(), SimError> {
        let mut names: HashSet<String> =
            self.model.services.iter().map(|s| s.name.clone()).collect();
        for (i, change) in changes.iter().enumerate() {
            let context = format!("change {i} ({})", change.action.kind());
            let known = |name: &str, names: &HashSet<String>| {
                if names.contains(name) {
                    Ok(())
                } else {
                    Err(SimError::UnknownService {
                        service: name.to_string(),
                        context: context.clone(),
                    })
                }
            };
            match &change.action {
                ChangeAction::AddService {
                    caller,
                    callee,
                    service_time_ms,
                    replicas,
                } => {
                    known(caller, &names)?;
                    known(callee, &names)?;
                    if names.contains(&change.service) {
                        return Err(SimError::Invalid(format!(
                            "{context}: service {:?} already exists",
                            change.service
                        )));
                    }
                    if *service_time_ms <= 0.0 || *replicas == 0 {
                        return Err(SimError::Invalid(format!(
                            "{context}: service_time_ms and replicas must be > 0"
                        )));
                    }
                    if let (Some(a), Some(b)) = (
                        self.model.service_index(caller),
                        self.model.service_index(callee),
                    ) {
                        let calls = self.model.services[a as usize]
                            .ops
                            .iter()
                            .flat_map(|o| o.stages.iter().flatten())
                            .any(|c| c.service == b);
                        if !calls {
                            return Err(SimError::Invalid(format!(
                                "{context}: {caller:?} does not call {callee:?}"
                            )));
                        }
                    }
                    names.insert(change.service.clone());
                }
                ChangeAction::RemoveService => {
                    known(&change.service, &names)?;
                    if let Some(s) = self.model.service_index(&change.service) {
                        let leaf = self.model.services[s as usize]
                            .ops
                            .iter()
                            .all(|o| o.stages.iter().all(|st| st.is_empty()));
                        let entry = self.model.requests.iter().any(|r| r.service == s);
                        if !leaf || entry {
                            return Err(SimError::Invalid(format!(
                                "{context}: only a leaf that is not an entry can be removed, {:?} is not",
                                change.service
                            )));
                        }
                    }
                }
                ChangeAction::Replace {
                    service_time_factor,
                } => {
                    known(&change.service, &names)?;
                    if service_time_factor.is_nan() || *service_time_factor <= 0.0 {
                        return Err(SimError::Invalid(format!(
                            "{context}: service_time_factor must be > 0"
                        )));
                    }
                }
                ChangeAction::Rps { factor } => {
                    known(&change.service, &names)?;
                    if factor.is_nan() || *factor <= 0.0 {
                        return Err(SimError::Invalid(format!("{context}: factor must be > 0")));
                    }
                }
                ChangeAction::ScaleOut { replicas } | ChangeAction::ScaleIn { replicas } => {
                    known(&change.service, &names)?;
                    if *replicas == 0 {
                        return Err(SimError::Invalid(format!(
                            "{context}: replicas must be > 0"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies the next scripted change (its time has come).
    pub(super) fn apply_change(&mut self) {
        let Some((t, change)) = self.changes.scheduled.get(self.changes.next).cloned() else {
            return;
        };
        self.changes.next += 1;
        let service = self.model.service_index(&change.service);
        let detail = match (&change.action, service) {
            (ChangeAction::ScaleOut { replicas }, Some(s)) => {
                let before = self.cluster.services[s as usize].active.len();
                for _ in 0..*replicas {
                    self.add_replica(s);
                }
                format!(
                    "replicas {before} -> {}",
                    self.cluster.services[s as usize].active.len()
                )
            }
            (ChangeAction::ScaleIn { replicas }, Some(s)) => {
                let before = self.cluster.services[s as usize].active.len();
                for _ in 0..*replicas {
                    if self.cluster.services[s as usize].active.len() <= 1 {
                        break;
                    }
                    if let Some(r) = self.cluster.services[s as usize].active.pop() {
                        self.cluster.replicas[r as usize].active = false;
                    }
                }
                format!(
                    "replicas {before} -> {}",
                    self.cluster.services[s as usize].active.len()
                )
            }
            (
                ChangeAction::Replace {
                    service_time_factor,
                },
                Some(s),
            ) => {
                let service = &mut self.model.services[s as usize];
                for op in &mut service.ops {
                    op.set_time(op.mean_ns * service_time_factor, op.cv);
                }
                service.version = next_version(&service.version);
                format!(
                    "new version {}: service time x{service_time_factor}",
                    service.version
                )
            }
            (
                ChangeAction::AddService {
                    caller,
                    callee,
                    service_time_ms,
                    replicas,
                },
                None,
            ) => {
                let (Some(a), Some(b)) = (
                    self.model.service_index(caller),
                    self.model.service_index(callee),
                ) else {
                    return;
                };
                let new = self.model.services.len() as u32;
                let proxy_ops = self.model.services[b as usize]
                    .ops
                    .iter()
                    .enumerate()
                    .map(|(i, o)| {
                        let mut op = OpModel {
                            name: o.name.clone(),
                            mean_ns: 0.0,
                            cv: 0.0,
                            mu: 0.0,
                            sigma: 0.0,
                            pre_fraction: 0.5,
                            request_bytes: o.request_bytes,
                            response_bytes: o.response_bytes,
                            disk_write_bytes: 0,
                            error_rate: 0.0,
                            stages: vec![vec![CallModel {
                                service: b,
                                op: i as u32,
                                probability: 1.0,
                            }]],
                        };
                        op.set_time(service_time_ms * 1e6, 0.5);
                        op
                    })
                    .collect();
                self.model.services.push(ServiceModel {
                    name: change.service.clone(),
                    threads: 16,
                    cores: 1.0,
                    memory_base: 256.0 * 1024.0 * 1024.0,
                    memory_per_request: 64.0 * 1024.0,
                    instrumented: true,
                    ops: proxy_ops,
                    version: FIRST_VERSION.to_owned(),
                });
                self.add_service_slots();
                for _ in 0..*replicas {
                    self.add_replica(new);
                }
                for op in &mut self.model.services[a as usize].ops {
                    for call in op.stages.iter_mut().flatten() {
                        if call.service == b {
                            call.service = new;
                        }
                    }
                }
                format!("inserted between {caller} and {callee}")
            }
            (ChangeAction::RemoveService, Some(s)) => {
                for svc in &mut self.model.services {
                    for op in &mut svc.ops {
                        for stage in &mut op.stages {
                            stage.retain(|c| c.service != s);
                        }
                    }
                }
                for &r in &self.cluster.services[s as usize].active {
                    self.cluster.replicas[r as usize].active = false;
                }
                self.cluster.services[s as usize].active.clear();
                format!("removed leaf {}", change.service)
            }
            (ChangeAction::Rps { factor }, Some(_)) => {
                let before = self.load.base_rate_per_ns * 1e9;
                self.load.base_rate_per_ns *= factor;
                // Redraw the next arrival at the new rate (memoryless, so this stays Poisson).
                self.load.next_arrival_ns = self.now_ns + self.exp_gap_ns(self.now_ns);
                format!(
                    "offered load {before:.0} -> {:.0} requests/s",
                    self.load.base_rate_per_ns * 1e9
                )
            }
            // Validated in `new`; a change that no longer applies is skipped, unlabelled.
            _ => return,
        };
        self.changes.applied.push(ChangeLabel {
            kind: change.action.kind().to_string(),
            service: change.service.clone(),
            at_ms: t / MS,
            detail,
        });
    }
}
