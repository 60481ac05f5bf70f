//! CloudEvents 1.0 over Kafka, in either content mode of the Kafka protocol binding: in, a
//! [`CloudEvent`] and the mode; out, the record's headers and value. Structured: the whole
//! event as JSON, `content-type: application/cloudevents+json; charset=utf-8`. Binary: the
//! attributes as `ce_*` headers (`ce_specversion`, `ce_id`, `ce_source`, `ce_type`,
//! `ce_subject`, `ce_time`), `content-type` = the event's `datacontenttype`, the value =
//! the event's `data`.

use anyhow::Context;
pub use augur_connectors::kafka::ActionsMode;

use crate::actuation::CloudEvent;

/// A Kafka record's headers and value.
pub struct EncodedEvent {
    pub headers: Vec<(&'static str, Vec<u8>)>,
    pub value: Vec<u8>,
}

pub fn encode(event: &CloudEvent, mode: ActionsMode) -> anyhow::Result<EncodedEvent> {
    match mode {
        ActionsMode::Structured => Ok(EncodedEvent {
            headers: vec![(
                "content-type",
                b"application/cloudevents+json; charset=utf-8".to_vec(),
            )],
            value: serde_json::to_vec(event).context("encoding an action")?,
        }),
        ActionsMode::Binary => Ok(EncodedEvent {
            headers: vec![
                ("ce_specversion", event.specversion.clone().into_bytes()),
                ("ce_id", event.id.clone().into_bytes()),
                ("ce_source", event.source.clone().into_bytes()),
                ("ce_type", event.kind.clone().into_bytes()),
                ("ce_subject", event.subject.clone().into_bytes()),
                ("ce_time", event.time.clone().into_bytes()),
                ("content-type", event.datacontenttype.clone().into_bytes()),
            ],
            value: serde_json::to_vec(&event.data).context("encoding an action's data")?,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actuation::ActionData;

    fn event() -> CloudEvent {
        CloudEvent {
            specversion: "1.0".into(),
            id: "a1/augur.scale_out".into(),
            source: "augur".into(),
            kind: "augur.scale_out".into(),
            subject: "default/frontend".into(),
            time: "2026-01-01T00:00:10Z".into(),
            datacontenttype: "application/json".into(),
            data: ActionData {
                replicas_delta: 1,
                resource: None,
                scale_factor: None,
                reason: "a1".into(),
                service: "frontend".into(),
                window_end: 10_000,
                probability: 0.9,
                summary: "frontend: p99 above its SLO".into(),
            },
        }
    }

    fn header<'a>(e: &'a EncodedEvent, name: &str) -> Option<&'a str> {
        e.headers
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    #[test]
    fn structured_mode_is_the_whole_event() -> anyhow::Result<()> {
        let e = encode(&event(), ActionsMode::Structured)?;
        let back: CloudEvent = serde_json::from_slice(&e.value)?;
        assert_eq!(back, event());
        assert_eq!(
            header(&e, "content-type"),
            Some("application/cloudevents+json; charset=utf-8")
        );
        assert!(header(&e, "ce_id").is_none());
        Ok(())
    }

    #[test]
    fn binary_mode_puts_attributes_in_headers_and_data_in_the_value() -> anyhow::Result<()> {
        let e = encode(&event(), ActionsMode::Binary)?;
        let data: ActionData = serde_json::from_slice(&e.value)?;
        assert_eq!(data, event().data);
        assert_eq!(header(&e, "ce_specversion"), Some("1.0"));
        assert_eq!(header(&e, "ce_id"), Some("a1/augur.scale_out"));
        assert_eq!(header(&e, "ce_source"), Some("augur"));
        assert_eq!(header(&e, "ce_type"), Some("augur.scale_out"));
        assert_eq!(header(&e, "ce_subject"), Some("default/frontend"));
        assert_eq!(header(&e, "ce_time"), Some("2026-01-01T00:00:10Z"));
        assert_eq!(header(&e, "content-type"), Some("application/json"));
        Ok(())
    }
}
