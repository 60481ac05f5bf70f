//! A learning assignment (Fluxion §3.1): models one latency percentile of one service.
//!
//! In: rows of the service's own inputs (`OWN_FEATURES`) and its external performance
//! dependencies (the latency spectra of its callees, `SPECTRUM` values per callee), and the
//! service's observed percentile. Out: a prediction of that percentile. State: the callees
//! it was built for, the dependency metrics input selection kept, one or more MLPs trained
//! over different periods, and their output weights.
//!
//! Operations, as the paper's `LA` API: [`Assignment::add_model`] (`LA.add`, optionally
//! deleting the old models, optionally warm-started from the newest), input selection
//! ([`Assignment::select_inputs`], Thompson sampling), output weighting
//! ([`Assignment::weigh_outputs`], differential evolution) and [`Assignment::predict`].

use serde::{Deserialize, Serialize};

use super::features::{OWN, SPECTRUM};
use super::input_selection::{SelectionSettings, select_inputs};
use super::mlp::{Mlp, MlpSettings, MlpState};
use super::output_weighting::{WeightingSettings, weigh_outputs};

/// One training row: own inputs and the callees' spectra (callee-major, `SPECTRUM` each).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub own: [f32; OWN],
    pub deps: Vec<f32>,
}

/// Settings shared by every assignment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssignmentSettings {
    /// Dependency metrics kept by input selection. Default 4.
    pub keep_inputs: usize,
    /// Thompson-sampling rounds. Default 30.
    pub selection_rounds: usize,
    /// Models kept per assignment (the oldest go first). Default 3.
    pub max_models: usize,
    pub mlp: MlpSettings,
    /// Adam steps when fine-tuning a copy of the newest model on recent data. Default 150.
    pub fine_tune_epochs: usize,
}

impl Default for AssignmentSettings {
    fn default() -> Self {
        AssignmentSettings {
            keep_inputs: 4,
            selection_rounds: 30,
            max_models: 3,
            mlp: MlpSettings::default(),
            fine_tune_epochs: 150,
        }
    }
}

/// How a new model starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Fresh weights, scales from the new data.
    Fresh,
    /// A copy of the newest model, fine-tuned (few samples suffice when little changed).
    Warm,
}

#[derive(Debug)]
pub struct Assignment {
    /// Spectrum index this assignment predicts.
    pub quantile: usize,
    /// Callees, in the order their spectra appear in `Row::deps`.
    pub callees: Vec<String>,
    /// Kept dependency metrics: indices into `Row::deps`.
    pub selected: Vec<usize>,
    models: Vec<Mlp>,
    weights: Vec<f64>,
}

/// An assignment as plain numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssignmentState {
    pub quantile: usize,
    pub callees: Vec<String>,
    pub selected: Vec<usize>,
    pub models: Vec<MlpState>,
    pub weights: Vec<f64>,
}

impl Assignment {
    pub fn new(quantile: usize, callees: Vec<String>) -> Self {
        Assignment {
            quantile,
            callees,
            selected: Vec::new(),
            models: Vec::new(),
            weights: Vec::new(),
        }
    }

    pub fn models(&self) -> usize {
        self.models.len()
    }

    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    fn input(&self, row: &Row) -> Vec<f32> {
        let mut x = row.own.to_vec();
        x.extend(
            self.selected
                .iter()
                .map(|&j| row.deps.get(j).copied().unwrap_or(0.0)),
        );
        x
    }

    /// Input selection: keeps the `keep_inputs` most useful dependency metrics.
    pub fn select_inputs(&mut self, rows: &[Row], y: &[f32], settings: &AssignmentSettings) {
        let candidates: Vec<usize> = (0..self.callees.len() * SPECTRUM).collect();
        // Columns of the full matrix: own first, then every dependency metric.
        let x: Vec<Vec<f32>> = rows
            .iter()
            .map(|r| {
                let mut v = r.own.to_vec();
                v.extend((0..candidates.len()).map(|j| r.deps.get(j).copied().unwrap_or(0.0)));
                v
            })
            .collect();
        let own: Vec<usize> = (0..OWN).collect();
        let shifted: Vec<usize> = candidates.iter().map(|j| j + OWN).collect();
        let chosen = select_inputs(
            &x,
            y,
            &own,
            &shifted,
            SelectionSettings {
                k: settings.keep_inputs,
                rounds: settings.selection_rounds,
                seed: 17 + self.quantile as u64,
            },
        );
        self.selected = chosen.into_iter().map(|c| c - OWN).collect();
    }

    /// Adds a model trained on `(rows, y)` (`LA.add`); `delete` drops the existing models
    /// first. Then reweighs the models on the same rows.
    pub fn add_model(
        &mut self,
        rows: &[Row],
        y: &[f32],
        start: Start,
        delete: bool,
        settings: &AssignmentSettings,
    ) {
        let x: Vec<Vec<f32>> = rows.iter().map(|r| self.input(r)).collect();
        let inputs = OWN + self.selected.len();
        let newest = self.models.last().filter(|m| m.inputs() == inputs);
        let model = match (start, newest) {
            (Start::Warm, Some(old)) => {
                let mut m = old.duplicate();
                let tune = MlpSettings {
                    epochs: settings.fine_tune_epochs,
                    ..settings.mlp.clone()
                };
                m.fit(&x, y, &tune, false);
                m
            }
            _ => {
                let mut m = Mlp::new(inputs, settings.mlp.hidden);
                m.fit(&x, y, &settings.mlp, true);
                m
            }
        };
        if delete {
            self.models.clear();
            self.weights.clear();
        }
        self.models.retain(|m| m.inputs() == inputs);
        self.models.push(model);
        while self.models.len() > settings.max_models.max(1) {
            self.models.remove(0);
        }
        self.weights = vec![0.0; self.models.len()];
        if let Some(last) = self.weights.last_mut() {
            *last = 1.0;
        }
        self.weigh_outputs(rows, y);
    }

    /// Output weighting over the hosted models on `(rows, y)`.
    pub fn weigh_outputs(&mut self, rows: &[Row], y: &[f32]) {
        if self.models.len() <= 1 || rows.is_empty() {
            self.weights = vec![1.0; self.models.len()];
            return;
        }
        let x: Vec<Vec<f32>> = rows.iter().map(|r| self.input(r)).collect();
        let outputs: Vec<Vec<f32>> = self.models.iter().map(|m| m.predict(&x)).collect();
        self.weights = weigh_outputs(&outputs, y, &self.weights, WeightingSettings::default());
    }

    /// The largest distance, in the newest model's standard deviations, between the mean of
    /// `callee`'s observed `spectra` and what that model was trained on, over the inputs
    /// that selection kept of `callee`'s (0 when it kept none, or has no model).
    pub fn input_shift(&self, callee: &str, spectra: &[[f32; SPECTRUM]]) -> f32 {
        let Some(newest) = self.models.last() else {
            return 0.0;
        };
        if spectra.is_empty() {
            return 0.0;
        }
        let mut shift = 0.0f32;
        for (k, &j) in self.selected.iter().enumerate() {
            if self.callees.get(j / SPECTRUM).map(String::as_str) != Some(callee) {
                continue;
            }
            let q = j % SPECTRUM;
            let mean = spectra.iter().map(|s| s[q]).sum::<f32>() / spectra.len() as f32;
            if let Some(z) = newest.standardized(OWN + k, mean) {
                shift = shift.max(z.abs());
            }
        }
        shift
    }

    /// Predictions for rows (0 when the assignment has no model yet).
    pub fn predict(&self, rows: &[Row]) -> Vec<f32> {
        let x: Vec<Vec<f32>> = rows.iter().map(|r| self.input(r)).collect();
        let mut out = vec![0.0f32; rows.len()];
        for (m, w) in self.models.iter().zip(&self.weights) {
            if *w == 0.0 {
                continue;
            }
            for (o, p) in out.iter_mut().zip(m.predict(&x)) {
                *o += *w as f32 * p;
            }
        }
        out
    }

    pub fn state(&self) -> AssignmentState {
        AssignmentState {
            quantile: self.quantile,
            callees: self.callees.clone(),
            selected: self.selected.clone(),
            models: self.models.iter().map(|m| m.state()).collect(),
            weights: self.weights.clone(),
        }
    }

    pub fn from_state(state: &AssignmentState) -> Option<Assignment> {
        let models = state
            .models
            .iter()
            .map(Mlp::from_state)
            .collect::<Option<Vec<_>>>()?;
        if models.len() != state.weights.len() {
            return None;
        }
        Some(Assignment {
            quantile: state.quantile,
            callees: state.callees.clone(),
            selected: state.selected.clone(),
            models,
            weights: state.weights.clone(),
        })
    }
}
