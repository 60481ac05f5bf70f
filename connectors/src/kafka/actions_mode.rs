//! How actuation commands are written to the actions topic (`kafka.actions_mode`): the two
//! content modes of the CloudEvents Kafka protocol binding.

use serde::{Deserialize, Serialize};

/// A CloudEvents content mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionsMode {
    /// The event as one JSON document.
    #[default]
    Structured,
    /// Attributes in `ce_*` headers, the value is the data.
    Binary,
}
