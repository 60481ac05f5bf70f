//! Alerts: what augur tells people and cluster managers (DESIGN.md, "Outputs").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::records::{EventTime, Resource};

/// What an alert says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    QosViolationPredicted,
    QosViolation,
    RootCause,
    LatencyForecast,
    TopologyChanged,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::QosViolationPredicted => "qos_violation_predicted",
            AlertKind::QosViolation => "qos_violation",
            AlertKind::RootCause => "root_cause",
            AlertKind::LatencyForecast => "latency_forecast",
            AlertKind::TopologyChanged => "topology_changed",
        }
    }
}

/// One ranked suspect.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Culprit {
    pub service: String,
    pub score: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resource: Option<Resource>,
    /// The operation (span name) the culprit's own time rose in, where the detector says.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub operation: Option<String>,
}

/// The model (or detector) that produced an alert.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
}

/// What a detector says about one window, before hysteresis and cooldown.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Detection {
    pub kind: AlertKind,
    /// The service the detection is about (the top culprit, or the entry point).
    pub service: String,
    pub probability: f64,
    pub horizon_ms: u64,
    /// Ranked, most likely first.
    pub culprits: Vec<Culprit>,
    /// Human-readable reason, e.g. "p99 412 ms is 5.1σ above its mean".
    pub summary: String,
}

/// An alert as written to `augur.alerts`: Alertmanager-style fields plus augur's own.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Deterministic: `{window_end}-{service}-{kind}-{detector}`, so consumers can drop
    /// duplicates, and alerts of different detectors in one topic never share an id.
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339; set when the alert resolves.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ends_at: Option<String>,
    #[serde(rename = "kind")]
    pub kind: AlertKind,
    pub service: String,
    pub probability: f64,
    #[serde(rename = "horizon_ms")]
    pub horizon_ms: u64,
    pub culprits: Vec<Culprit>,
    #[serde(rename = "window_end")]
    pub window_end: EventTime,
    pub model: ModelRef,
}

impl Alert {
    pub fn id_for(window_end: EventTime, service: &str, kind: AlertKind, detector: &str) -> String {
        format!("{window_end}-{service}-{}-{detector}", kind.as_str())
    }
}
