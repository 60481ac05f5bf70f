//! The inference graph (Fluxion §3.2): learning assignments composed along the RPC graph.
//!
//! In: samples (closed windows read by `features::sample`). Out: per service a predicted
//! latency spectrum, and at the entry point the end-to-end spectrum. State: one service
//! vertex per service, holding one assignment per spectrum quantile; its callees (the
//! edges, reversed from the call graph: a callee's predicted spectrum feeds its callers).
//!
//! Evaluation goes leaves → entry: each vertex's assignments read the service's own
//! inputs and the *predicted* spectra of its callees. Training reads the *observed*
//! spectra (each assignment is fitted on its own, as the paper does).
//!
//! Vertices are service vertices only: replicas are aggregated through the `replicas` and
//! per-replica inputs, so scaling a service changes the inputs of its one vertex and
//! refits only it; per-instance vertices would multiply the models by the replica count
//! with no gain in the simulator, whose replicas of a service are identical.
//!
//! Graph updates (the paper's `GE` API): [`InferenceGraph::sync_topology`] follows the
//! dependency graph (new services get a vertex, a vertex whose callees changed gets new
//! inputs); [`InferenceGraph::scale`] refits one vertex by adding a model warm-started from
//! its newest and reweighing; [`InferenceGraph::replace`] gives a service a new assignment;
//! [`InferenceGraph::remove_service`] drops one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::assignment::{Assignment, AssignmentSettings, AssignmentState, Row, Start};
use super::features::{SPECTRUM, Sample};

/// One service vertex.
#[derive(Debug)]
pub struct Vertex {
    pub service: String,
    pub callees: Vec<String>,
    /// One per spectrum quantile.
    pub assignments: Vec<Assignment>,
    /// Times this vertex was (re)fitted: lets tests and the eval see what a change touched.
    pub fits: u64,
}

impl Vertex {
    fn new(service: &str, callees: Vec<String>) -> Self {
        Vertex {
            service: service.to_string(),
            assignments: (0..SPECTRUM)
                .map(|q| Assignment::new(q, callees.clone()))
                .collect(),
            callees,
            fits: 0,
        }
    }

    pub fn trained(&self) -> bool {
        self.assignments.iter().all(|a| a.models() > 0)
    }
}

/// A vertex as plain numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VertexState {
    pub service: String,
    pub callees: Vec<String>,
    pub assignments: Vec<AssignmentState>,
}

/// A graph as plain numbers (the checkpoint's body).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphState {
    pub entry: String,
    pub settings: AssignmentSettings,
    pub vertices: Vec<VertexState>,
}

#[derive(Debug)]
pub struct InferenceGraph {
    /// The service whose vertex outputs the end-to-end latency.
    pub entry: String,
    pub settings: AssignmentSettings,
    vertices: BTreeMap<String, Vertex>,
}

/// The callees of each service over a set of samples (union).
pub fn callees_of(samples: &[Sample]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in samples {
        for (caller, callees) in &s.callees {
            out.entry(caller.clone())
                .or_default()
                .extend(callees.iter().cloned());
        }
    }
    out.into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

impl InferenceGraph {
    /// An empty graph for `entry`.
    pub fn new(entry: &str, settings: AssignmentSettings) -> Self {
        InferenceGraph {
            entry: entry.to_string(),
            settings,
            vertices: BTreeMap::new(),
        }
    }

    /// Builds and trains a graph over the services and calls seen in `samples`.
    pub fn fit(samples: &[Sample], entry: &str, settings: AssignmentSettings) -> Self {
        let mut graph = InferenceGraph::new(entry, settings);
        let calls = callees_of(samples);
        let services: BTreeSet<String> = samples
            .iter()
            .flat_map(|s| s.services.keys().cloned())
            .collect();
        for service in &services {
            let callees = calls.get(service).cloned().unwrap_or_default();
            graph
                .vertices
                .insert(service.clone(), Vertex::new(service, callees));
        }
        for service in graph.order() {
            graph.fit_vertex(&service, samples, Start::Fresh, true);
        }
        graph
    }

    pub fn vertex(&self, service: &str) -> Option<&Vertex> {
        self.vertices.get(service)
    }

    pub fn services(&self) -> impl Iterator<Item = &String> {
        self.vertices.keys()
    }

    /// Refit counts per service.
    pub fn fits(&self) -> BTreeMap<String, u64> {
        self.vertices
            .iter()
            .map(|(k, v)| (k.clone(), v.fits))
            .collect()
    }

    /// Vertex fits so far, summed (changes whenever any vertex is refitted).
    pub fn total_fits(&self) -> u64 {
        self.vertices.values().map(|v| v.fits).sum()
    }

    /// Services callees first (leaves → entry); cycles broken by name order.
    pub fn order(&self) -> Vec<String> {
        fn visit(
            s: &str,
            graph: &BTreeMap<String, Vertex>,
            seen: &mut BTreeSet<String>,
            out: &mut Vec<String>,
        ) {
            if !seen.insert(s.to_string()) {
                return;
            }
            if let Some(v) = graph.get(s) {
                for c in &v.callees {
                    visit(c, graph, seen, out);
                }
                out.push(s.to_string());
            }
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for s in self.vertices.keys() {
            visit(s, &self.vertices, &mut seen, &mut out);
        }
        out
    }

    /// Training rows of `service` from observed values: rows, and per row the target spectrum.
    fn rows(
        &self,
        service: &str,
        callees: &[String],
        samples: &[Sample],
    ) -> (Vec<Row>, Vec<[f32; SPECTRUM]>) {
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        for s in samples {
            let Some(own) = s.services.get(service).filter(|o| o.active) else {
                continue;
            };
            let target = if service == self.entry {
                s.e2e(service).unwrap_or(own.latency)
            } else {
                own.latency
            };
            let mut deps = Vec::with_capacity(callees.len() * SPECTRUM);
            for c in callees {
                match s.services.get(c).filter(|c| c.active) {
                    Some(c) => deps.extend(c.latency),
                    None => deps.extend([0.0; SPECTRUM]),
                }
            }
            rows.push(Row { own: own.own, deps });
            targets.push(target);
        }
        (rows, targets)
    }

    /// (Re)fits one vertex on `samples`: input selection when its inputs are new
    /// (`Start::Fresh` or changed callees), then a model per quantile (`LA.add`) and output
    /// weighting. Returns the number of rows used.
    pub fn fit_vertex(
        &mut self,
        service: &str,
        samples: &[Sample],
        start: Start,
        delete: bool,
    ) -> usize {
        let Some(callees) = self.vertices.get(service).map(|v| v.callees.clone()) else {
            return 0;
        };
        let (rows, targets) = self.rows(service, &callees, samples);
        if rows.len() < 2 {
            return rows.len();
        }
        let settings = self.settings.clone();
        let Some(vertex) = self.vertices.get_mut(service) else {
            return 0;
        };
        for a in &mut vertex.assignments {
            let y: Vec<f32> = targets.iter().map(|t| t[a.quantile]).collect();
            let inputs_changed = a.callees != callees || a.models() == 0;
            if start == Start::Fresh || inputs_changed {
                a.callees = callees.clone();
                a.select_inputs(&rows, &y, &settings);
                a.add_model(&rows, &y, Start::Fresh, true, &settings);
            } else {
                a.add_model(&rows, &y, start, delete, &settings);
            }
        }
        vertex.fits += 1;
        rows.len()
    }

    /// Predicted spectra of every vertex for every sample, leaves → entry in one batch per
    /// vertex. A callee without a vertex contributes its observed spectrum, a callee gone
    /// from the graph (or idle) zeros.
    ///
    /// A vertex's inputs are laid out by the callees its assignments were fitted with, not
    /// its current ones: after the dependency graph adds or removes a callee, the vertex
    /// keeps its models (and their input selection) until its refit.
    pub fn predict_batch(&self, samples: &[Sample]) -> Vec<BTreeMap<String, [f32; SPECTRUM]>> {
        let mut out: Vec<BTreeMap<String, [f32; SPECTRUM]>> = vec![BTreeMap::new(); samples.len()];
        for service in self.order() {
            let Some(v) = self.vertices.get(&service) else {
                continue;
            };
            let callees = v
                .assignments
                .first()
                .filter(|a| a.models() > 0)
                .map_or(&v.callees, |a| &a.callees);
            let rows: Vec<Row> = samples
                .iter()
                .zip(&out)
                .map(|(s, pred)| {
                    let own = s.services.get(&service).map_or([0.0; 5], |o| o.own);
                    let mut deps = Vec::with_capacity(callees.len() * SPECTRUM);
                    for c in callees {
                        let spectrum = pred
                            .get(c)
                            .copied()
                            .or_else(|| s.services.get(c).filter(|c| c.active).map(|c| c.latency));
                        deps.extend(spectrum.unwrap_or([0.0; SPECTRUM]));
                    }
                    Row { own, deps }
                })
                .collect();
            let per_q: Vec<Vec<f32>> = v.assignments.iter().map(|a| a.predict(&rows)).collect();
            for (i, pred) in out.iter_mut().enumerate() {
                let mut spectrum = [0.0f32; SPECTRUM];
                for (q, p) in per_q.iter().enumerate() {
                    spectrum[q] = p.get(i).copied().unwrap_or(0.0).max(0.0);
                }
                pred.insert(service.clone(), spectrum);
            }
        }
        out
    }

    /// The end-to-end spectrum predicted for one sample.
    pub fn predict(&self, sample: &Sample) -> Option<[f32; SPECTRUM]> {
        self.predict_batch(std::slice::from_ref(sample))
            .pop()
            .and_then(|m| m.get(&self.entry).copied())
    }

    /// Follows the dependency graph of a window: a new service gets a vertex, a vertex that
    /// calls a new callee gets it as an input. Returns the services whose vertex must be
    /// (re)fitted because of it. Edges only retire through [`InferenceGraph::remove_service`]
    /// (or `retire_edge`), so a quiet window that didn't exercise a rare call changes nothing.
    pub fn sync_topology(&mut self, sample: &Sample) -> Vec<String> {
        let mut changed = Vec::new();
        for (service, own) in &sample.services {
            if !own.active {
                continue;
            }
            let observed = sample.callees.get(service).cloned().unwrap_or_default();
            match self.vertices.get_mut(service) {
                None => {
                    self.vertices
                        .insert(service.clone(), Vertex::new(service, observed));
                    changed.push(service.clone());
                }
                Some(v) if observed.iter().any(|c| !v.callees.contains(c)) => {
                    let mut union: BTreeSet<String> = v.callees.iter().cloned().collect();
                    union.extend(observed);
                    v.callees = union.into_iter().collect();
                    changed.push(service.clone());
                }
                Some(_) => {}
            }
        }
        changed
    }

    /// How far `callee`'s latency in `samples` lies outside what `caller`'s models were
    /// fitted on: the largest [`Assignment::input_shift`] over its assignments.
    pub fn input_shift(&self, caller: &str, callee: &str, samples: &[Sample]) -> f32 {
        let Some(v) = self.vertices.get(caller) else {
            return 0.0;
        };
        let spectra: Vec<[f32; SPECTRUM]> = samples
            .iter()
            .filter_map(|s| s.services.get(callee).filter(|o| o.active))
            .map(|o| o.latency)
            .collect();
        v.assignments
            .iter()
            .map(|a| a.input_shift(callee, &spectra))
            .fold(0.0, f32::max)
    }

    /// `GE.scale` + `GE.fit`: the service's replica count changed; adds a model warm-started
    /// from the vertex's newest, trained on `samples` (recent, after the change), and reweighs.
    pub fn scale(&mut self, service: &str, samples: &[Sample]) -> usize {
        self.fit_vertex(service, samples, Start::Warm, false)
    }

    /// `GE.replace`: a new version of the service: its vertex gets a new assignment, started
    /// from the old weights (same inputs) and trained on `samples` only; old models go.
    pub fn replace(&mut self, service: &str, samples: &[Sample]) -> usize {
        self.fit_vertex(service, samples, Start::Warm, true)
    }

    /// The services whose vertices call `service`.
    pub fn callers_of(&self, service: &str) -> Vec<String> {
        self.vertices
            .values()
            .filter(|v| v.callees.iter().any(|c| c == service))
            .map(|v| v.service.clone())
            .collect()
    }

    /// Removes a service's vertex and its edges.
    pub fn remove_service(&mut self, service: &str) -> Vec<String> {
        self.vertices.remove(service);
        let mut callers = Vec::new();
        for v in self.vertices.values_mut() {
            if v.callees.iter().any(|c| c == service) {
                v.callees.retain(|c| c != service);
                callers.push(v.service.clone());
            }
        }
        callers
    }

    /// The dependency graph retired the call `caller → callee`.
    pub fn retire_edge(&mut self, caller: &str, callee: &str) -> bool {
        match self.vertices.get_mut(caller) {
            Some(v) if v.callees.iter().any(|c| c == callee) => {
                v.callees.retain(|c| c != callee);
                true
            }
            _ => false,
        }
    }

    pub fn state(&self) -> GraphState {
        GraphState {
            entry: self.entry.clone(),
            settings: self.settings.clone(),
            vertices: self
                .vertices
                .values()
                .map(|v| VertexState {
                    service: v.service.clone(),
                    callees: v.callees.clone(),
                    assignments: v.assignments.iter().map(|a| a.state()).collect(),
                })
                .collect(),
        }
    }

    /// `None` when a model in the state is malformed.
    pub fn from_state(state: &GraphState) -> Option<Self> {
        let mut vertices = BTreeMap::new();
        for v in &state.vertices {
            let assignments = v
                .assignments
                .iter()
                .map(Assignment::from_state)
                .collect::<Option<Vec<_>>>()?;
            vertices.insert(
                v.service.clone(),
                Vertex {
                    service: v.service.clone(),
                    callees: v.callees.clone(),
                    assignments,
                    fits: 0,
                },
            );
        }
        Some(InferenceGraph {
            entry: state.entry.clone(),
            settings: state.settings.clone(),
            vertices,
        })
    }
}
