//! Sage (Gan et al., ASPLOS '21): unsupervised root-cause analysis with a causal Bayesian
//! network built from the RPC graph and a graphical VAE that answers counterfactual
//! questions — which service, then which of its resources, caused a QoS violation.
//!
//! - [`cbn`]: the causal Bayesian network of an RPC graph (cycles merged into meta-nodes).
//! - [`features`]: node values of a window, standardization and normal values.
//! - [`gvae`]: per-unit and per-channel conditional VAEs composed along the CBN (eq. 6–9).
//! - [`model`]: a trained model and its versioned checkpoint files; choice by services.
//! - [`train`]: training on unlabelled windows; partial + incremental retraining.
//! - [`retrain`]: partial + incremental retraining after a topology change.
//! - [`counterfactual`]: the two-level counterfactual diagnosis.
//! - [`synthetic`]: chain windows with a known answer (tests, benches).
//! - [`detector`]: the `sage` [`augur_operators::Detector`].

pub mod cbn;
pub mod counterfactual;
pub mod detector;
pub mod episode;
pub mod features;
pub mod gvae;
pub mod model;
pub mod online;
pub mod retrain;
pub mod synthetic;
#[cfg(test)]
mod tests;
pub mod train;

pub use detector::{Sage, SageConfig};
pub use gvae::GvaeHyper;
pub use train::{SageTrainSettings, check_windows, train};
