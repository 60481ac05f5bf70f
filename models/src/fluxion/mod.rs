//! Fluxion: latency forecasting with learning assignments composed along the RPC graph
//! (Fluxion, NSDI '23), and the monolithic baseline it is compared with.
//!
//! - [`features`]: what a closed window gives (own knobs/states, latency spectra, calls).
//! - [`mlp`]: the small libtorch regressor an assignment hosts.
//! - [`assignment`]: one latency percentile of one service; [`input_selection`] (Thompson
//!   sampling) and [`output_weighting`] (differential evolution) are its two strategies,
//!   [`ridge`] the yardstick input selection scores combinations with.
//! - [`graph`]: the inference graph, evaluated leaves → entry, updated per deployment change.
//! - [`debugging`]: the Pearson-correlation walk to the assignment at fault.
//! - [`baseline`]: one MLP over all services → end-to-end latency.
//! - [`what_if`]: predicted p99 with a different replica count.
//! - [`board`]: the detector's newest graph, shared with the actuation policy's what-if.
//! - [`checkpoint`]: a trained graph saved with its provenance.
//! - [`detector`]: the `fluxion` detector (online learning, `latency_forecast` alerts).

pub mod assignment;
pub mod baseline;
pub mod board;
pub mod checkpoint;
pub mod debugging;
pub mod detector;
pub mod features;
pub mod graph;
pub mod input_selection;
pub mod mlp;
pub mod output_weighting;
pub mod ridge;
pub mod what_if;

#[cfg(test)]
mod tests;

pub use assignment::AssignmentSettings;
pub use baseline::{Monolithic, baseline_settings};
pub use board::GraphBoard;
pub use checkpoint::{FluxionCheckpoint, latest_version};
pub use detector::{Fluxion, FluxionConfig};
pub use features::{P90, P99, SPECTRUM, Sample, ServiceSample, sample};
pub use graph::InferenceGraph;
pub use what_if::{what_if, what_if_cpu};
