//! Seer: QoS-violation prediction with culprit services from a learned network over the
//! last few windows (ASPLOS'19).
//!
//! The face: [`SeerConfig`] and the [`Seer`] detector; [`train`] with [`TrainSettings`]
//! on [`Dataset`]s (recorded by `augur record`, labelled by [`labels`]); [`SeerModel`], a
//! checkpoint. Inside: the per-service input [`features`], the [`net`]work, its
//! checkpoint [`layout`], and the [`remap`] of weights to a new service set.

pub mod dataset;
pub mod detector;
pub mod features;
pub mod labels;
pub mod layout;
pub mod model;
pub mod net;
pub mod remap;
pub mod train;

pub use dataset::{Dataset, Row};
pub use detector::{Seer, SeerConfig};
pub use features::{FEATURES, N_FEATURES, UsageFill};
pub use labels::{Fault, label_windows};
pub use layout::{Layout, SeerHyper};
pub use model::SeerModel;
pub use train::{TrainSettings, train};
