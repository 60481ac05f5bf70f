//! Digital twins: a simulator topology fitted from an application's own traces
//! ([`fit`]), written as the TOML of `configs/topologies/` ([`to_toml`]), and checked by
//! simulating it and comparing with real data it was not fitted on ([`compare`]).
//!
//! The pieces, one file each: [`read`] (a directory's spans, split in time), [`topics`] (a
//! time range of Kafka topics), [`hops`] (spans
//! grouped into service visits), [`stages`] (an operation's call structure), [`variants`] (request types behind one entry span name), [`fit`] (the
//! topology), [`write`] (its TOML), [`simulate`] (running it), [`compare`] (twin vs real).

pub mod compare;
pub mod fit;
pub mod hops;
pub mod quantile;
pub mod read;
pub mod simulate;
pub mod stages;
pub mod topics;
pub mod variants;
pub mod write;

pub use compare::{Comparison, ServiceRow, ServiceStats, Summary, compare, summarize};
pub use fit::{FitInput, Fitted, fit};
pub use hops::{Hop, Names, hops_of, self_times_ns};
pub use read::{Part, read_spans, split};
pub use write::to_toml;

use crate::files::FileError;
use crate::simulator::SimError;

#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error(transparent)]
    File(FileError),
    #[error("no spans to fit in {0}")]
    NoSpans(String),
    #[error("no root spans (requests entering the application) in {0}")]
    NoRoots(String),
    #[error("the fitted topology is invalid: {0}")]
    Sim(SimError),
    #[error("kafka: {0}")]
    Kafka(String),
}
