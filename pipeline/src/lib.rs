//! The augur application: CLI, config, dataflow assembly, evaluation.

pub mod actuation;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod control;
pub mod dataflow;
pub mod display;
pub mod eval;
pub mod job_metrics;
pub mod memory;
pub mod run;
pub mod service_join;
pub mod sink;
pub mod source;
pub mod stats;
