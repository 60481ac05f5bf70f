//! The augur application: CLI, config, dataflow assembly, evaluation.
