//! augur-connectors: wire formats, sources and sinks, and the built-in cluster simulator.

pub mod dead_letter;
pub mod files;
pub mod kafka;
pub mod otlp;
pub mod simulator;
