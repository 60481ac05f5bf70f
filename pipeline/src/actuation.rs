//! The actuation policy: in, alerts as the decide step emits them; out, CloudEvents 1.0
//! actuation commands for a cluster manager. A firing `qos_violation_predicted` alert with
//! a top culprit becomes `augur.scale_up` (when the culprit names a resource) or
//! `augur.scale_out`, `subject: "<namespace>/<service>"`, with a deterministic id (the
//! alert's id + the type) so a consumer can drop duplicates after a restart. State: per
//! service, the event time of its last command (cooldown, in event time so replays agree).

use std::collections::HashMap;

use augur_operators::decide::rfc3339;
use augur_operators::{Alert, AlertKind, EventTime};
use serde::{Deserialize, Serialize};

/// `[actuation]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActuationConfig {
    /// Emit actuation commands at all. Default true.
    pub enabled: bool,
    /// No second command for the same service within this much event time, ms. Default 30000.
    pub cooldown_ms: u64,
    /// Namespace in the subject when the alert has no `namespace` label. Default `default`.
    pub namespace: String,
    /// CloudEvents `source`. Default `augur`.
    pub source: String,
}

impl Default for ActuationConfig {
    fn default() -> Self {
        ActuationConfig {
            enabled: true,
            cooldown_ms: 30_000,
            namespace: "default".to_string(),
            source: "augur".to_string(),
        }
    }
}

/// A CloudEvents 1.0 event (structured JSON mode).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub subject: String,
    pub time: String,
    pub datacontenttype: String,
    pub data: ActionData,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionData {
    pub replicas_delta: i32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resource: Option<String>,
    /// The id of the alert that caused the command.
    pub reason: String,
    pub service: String,
    pub window_end: EventTime,
    pub probability: f64,
}

pub struct ActuationPolicy {
    config: ActuationConfig,
    last: HashMap<String, EventTime>,
}

impl ActuationPolicy {
    pub fn new(config: ActuationConfig) -> Self {
        ActuationPolicy {
            config,
            last: HashMap::new(),
        }
    }

    /// The command an alert calls for, if any.
    pub fn decide(&mut self, alert: &Alert) -> Option<CloudEvent> {
        if !self.config.enabled
            || alert.kind != AlertKind::QosViolationPredicted
            || alert.ends_at.is_some()
        {
            return None;
        }
        let culprit = alert.culprits.first()?;
        if let Some(last) = self.last.get(&culprit.service) {
            if alert.window_end < last.saturating_add(self.config.cooldown_ms) {
                return None;
            }
        }
        self.last.insert(culprit.service.clone(), alert.window_end);
        let resource = culprit.resource.map(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{r:?}").to_lowercase())
        });
        let kind = if resource.is_some() {
            "augur.scale_up"
        } else {
            "augur.scale_out"
        };
        let namespace = alert
            .labels
            .get("namespace")
            .cloned()
            .unwrap_or_else(|| self.config.namespace.clone());
        Some(CloudEvent {
            specversion: "1.0".to_string(),
            id: format!("{}-{kind}", alert.id),
            source: self.config.source.clone(),
            kind: kind.to_string(),
            subject: format!("{namespace}/{}", culprit.service),
            time: rfc3339(alert.window_end),
            datacontenttype: "application/json".to_string(),
            data: ActionData {
                replicas_delta: 1,
                resource,
                reason: alert.id.clone(),
                service: culprit.service.clone(),
                window_end: alert.window_end,
                probability: alert.probability,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use augur_operators::{Culprit, ModelRef, Resource};
    use std::collections::BTreeMap;

    fn alert(window_end: EventTime, service: &str, resource: Option<Resource>) -> Alert {
        Alert {
            id: Alert::id_for(window_end, "front", AlertKind::QosViolationPredicted),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            starts_at: rfc3339(window_end),
            ends_at: None,
            kind: AlertKind::QosViolationPredicted,
            service: "front".to_string(),
            probability: 0.9,
            horizon_ms: 1000,
            culprits: vec![Culprit {
                service: service.to_string(),
                score: 1.0,
                resource,
            }],
            window_end,
            model: ModelRef {
                name: "nsigma".to_string(),
                version: "1".to_string(),
            },
        }
    }

    #[test]
    fn scale_up_with_resource_scale_out_without_and_cooldown() {
        let mut p = ActuationPolicy::new(ActuationConfig::default());
        let e = p
            .decide(&alert(10_000, "db", Some(Resource::Cpu)))
            .expect("fires");
        assert_eq!(e.kind, "augur.scale_up");
        assert_eq!(e.subject, "default/db");
        assert_eq!(e.data.resource.as_deref(), Some("cpu"));
        assert_eq!(e.id, "10000-front-qos_violation_predicted-augur.scale_up");
        assert!(p.decide(&alert(20_000, "db", None)).is_none(), "cooldown");
        let e = p
            .decide(&alert(20_000, "cache", None))
            .expect("other service");
        assert_eq!(e.kind, "augur.scale_out");
        assert!(
            p.decide(&alert(40_000, "db", None)).is_some(),
            "cooldown over"
        );
        let mut resolved = alert(50_000, "x", None);
        resolved.ends_at = Some(rfc3339(50_000));
        assert!(p.decide(&resolved).is_none());
    }
}
