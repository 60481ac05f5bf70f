//! The JSON beside a checkpoint: what the weights mean.
//!
//! In/out: serde. The service order (back end → front end) and feature names fix the
//! input layout; `mean`/`std` standardize features; `hyper` rebuilds the network;
//! `threshold` is the violation probability at which the detector fires.

use serde::{Deserialize, Serialize};

/// Layer sizes of the Seer network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeerHyper {
    /// Output channels of the first 1-D convolution across services.
    pub conv1: i64,
    /// Output channels of the second convolution (per service, fed to the LSTM).
    pub conv2: i64,
    /// Kernel width of both convolutions (odd; neighbours in back-end-first order).
    pub kernel: i64,
    /// LSTM hidden size.
    pub hidden: i64,
    /// LSTM layers.
    pub layers: i64,
    /// Dropout before the head.
    pub dropout: f64,
    /// Windows of history per prediction (H).
    pub history: usize,
    /// Also feed each service's change against its mean over the H windows (a queue or
    /// latency that is building up), beside the standardized values. Checkpoints written
    /// before this field existed have none.
    #[serde(default)]
    pub delta: bool,
    /// Score culprits with weights shared by every service (a 1×1 convolution over the
    /// first convolution's output at the last window) instead of a per-service head, so
    /// a service never seen as a culprit in training can still be named. Older
    /// checkpoints have the per-service head.
    #[serde(default)]
    pub shared_culprit: bool,
    /// With `shared_culprit`: score each service from its own inputs at the last window
    /// (values and their change) rather than from the first convolution's channels, which
    /// mix in the services next to it in back-end-first order — neighbours in that order
    /// need not call each other. Checkpoints written before this field existed score from
    /// the convolution.
    #[serde(default)]
    pub culprit_inputs: bool,
    /// Networks trained side by side from different initial weights, whose probabilities
    /// are averaged (an ensemble; see `net.rs`). Checkpoints written before this
    /// field existed have one (the struct's default).
    pub members: i64,
}

impl Default for SeerHyper {
    fn default() -> Self {
        SeerHyper {
            conv1: 16,
            conv2: 4,
            kernel: 3,
            hidden: 48,
            layers: 1,
            dropout: 0.2,
            history: 5,
            delta: true,
            shared_culprit: true,
            culprit_inputs: true,
            members: 1,
        }
    }
}

/// Everything needed to use a checkpoint's weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Model name, e.g. `seer`.
    pub model: String,
    /// Checkpoint version (increasing).
    pub version: u64,
    /// Services in input order, back end first.
    pub services: Vec<String>,
    /// Feature names per service, in column order.
    pub features: Vec<String>,
    pub hyper: SeerHyper,
    /// Per-feature mean and standard deviation of the training data (after log compression).
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Violation probability at which the detector fires.
    pub threshold: f64,
    pub window_ms: u64,
    pub horizon_ms: u64,
    /// How the checkpoint was made (the `augur train` command line, data files).
    #[serde(default)]
    pub provenance: String,
}
