//! Partial + incremental retraining after a topology change (Sage §4.4).
//!
//! In: the model serving before the change, unlabelled windows after it, and the services
//! known to have changed (a new version; added and removed services are found from the
//! RPC graph). Out: a model for the new CBN. State: none.
//!
//! *Incremental*: the new GVAE starts from the old one's weights wherever a unit or
//! channel keeps its name and shape. *Partial*: only the units with new or reshaped parts,
//! the changed services, and their ancestors in the RPC graph (the callers whose latency
//! depends on them) are trained; everything downstream stays frozen. Standardization and
//! normal values of the frozen parts stay the old ones, so their inputs don't move.

use std::collections::BTreeSet;

use augur_operators::WindowSnapshot;

use super::model::SageModel;
use super::train::{SageTrainSettings, fit, prepare, retrain_set, transfer};

/// What a partial retraining did.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrainReport {
    pub units_trained: Vec<String>,
    pub units_total: usize,
    pub channels_trained: usize,
    pub channels_total: usize,
    pub seconds: f64,
    pub loss: f64,
}

/// A model for the topology of `windows`, retrained partially from `old`.
pub fn retrain_partial(
    old: &SageModel,
    windows: &[WindowSnapshot],
    changed: &[String],
    settings: &SageTrainSettings,
) -> (SageModel, RetrainReport) {
    let start = std::time::Instant::now();
    let (mut layout, _, violated) = prepare(
        windows,
        &old.layout.model,
        old.layout.hyper.clone(),
        &old.layout.x_resources,
        format!("{} + partial retraining", old.layout.provenance),
    );
    layout.version = old.layout.version + 1;
    // Which services move: the changed ones, new ones, callers of removed ones, and all
    // their ancestors. Their blocks take the new statistics; the rest keep the old.
    let old_services = old.layout.services();
    let mut moving: BTreeSet<String> = changed.iter().cloned().collect();
    for s in layout.services() {
        if !old_services.contains(&s) {
            moving.insert(s);
        }
    }
    let cbn = layout.cbn.clone();
    for (u, unit) in cbn.units.iter().enumerate() {
        let callees_now: BTreeSet<String> = cbn
            .invoked(u)
            .iter()
            .map(|i| cbn.rpcs[*i].callee.clone())
            .collect();
        let callees_before: BTreeSet<String> = old
            .layout
            .cbn
            .rpcs
            .iter()
            .filter(|r| unit.members.contains(&r.caller))
            .map(|r| r.callee.clone())
            .collect();
        if callees_now != callees_before {
            moving.extend(unit.members.iter().cloned());
        }
    }
    let mut with_ancestors = moving.clone();
    for s in &moving {
        if let Some(u) = cbn.unit_of(s) {
            for a in cbn.ancestors(u) {
                with_ancestors.extend(cbn.units[a].members.iter().cloned());
            }
        }
    }
    let service_of_key = |key: &str| -> Vec<String> {
        let body = key.split_once(':').map_or(key, |(_, b)| b);
        body.split("->").map(|s| s.to_string()).collect()
    };
    for (key, stats) in &old.layout.norm.blocks {
        let keep = service_of_key(key)
            .iter()
            .all(|s| !with_ancestors.contains(s));
        if keep && layout.norm.blocks.contains_key(key) {
            layout.norm.blocks.insert(key.clone(), stats.clone());
        }
    }
    // Re-standardize with the merged statistics.
    let samples: Vec<super::features::Sample> = windows
        .iter()
        .filter(|w| !w.services.is_empty() && !w.edges.is_empty())
        .map(|w| layout.sample(super::features::raw_blocks(w)))
        .collect();
    let device = old.device();
    let mut model = SageModel::new(layout, device);
    let fresh = transfer(old, &mut model);
    let changed_all: Vec<String> = moving.into_iter().collect();
    let (units, channels) = retrain_set(&model, &fresh, &changed_all);
    let loss = fit(
        &mut model,
        &samples,
        &violated,
        &units,
        &channels,
        settings,
        |_, _| {},
    );
    let report = RetrainReport {
        units_trained: units
            .iter()
            .map(|u| model.layout.cbn.units[*u].name.clone())
            .collect(),
        units_total: model.layout.cbn.units.len(),
        channels_trained: channels.len(),
        channels_total: model.layout.cbn.rpcs.len(),
        seconds: start.elapsed().as_secs_f64(),
        loss,
    };
    (model, report)
}
