//! The augur application: CLI, config, dataflow assembly, evaluation.

pub mod cli;
pub mod commands;
pub mod config;
pub mod dataflow;
pub mod display;
pub mod eval;
pub mod run;
pub mod source;
pub mod stats;
