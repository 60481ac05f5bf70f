//! augur-connectors: wire formats, the source and sink traits, one module per connector
//! (files, Kafka, the built-in cluster simulator).

pub mod dead_letter;
pub mod files;
pub mod kafka;
pub mod otlp;
pub mod simulator;
pub mod sink;
pub mod source;
pub mod twin;
