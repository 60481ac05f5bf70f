//! augur-connectors: wire formats, sources and sinks, and the built-in cluster simulator.

pub mod simulator;
