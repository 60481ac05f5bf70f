//! prometheus-kafka-adapter JSON: in, one message
//! `{"timestamp":"2024-01-01T00:00:00Z","value":"0.5","name":"container_cpu_utilization","labels":{...}}`;
//! out, a [`MetricPoint`] when the name maps to a resource. Service from the labels
//! `service.name`/`service_name`/`job`, instance from `pod`/`service.instance.id`/
//! `service_instance_id`/`instance` (the pod first, as for OTLP resources). Stateless.

use std::collections::BTreeMap;

use augur_operators::records::MetricPoint;
use serde::Deserialize;

use crate::otlp::{DecodeError, MetricNames, RecordError};

#[derive(Deserialize)]
struct Sample {
    timestamp: serde_json::Value,
    value: serde_json::Value,
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Decodes one message: `Ok(Some)` a point, `Ok(None)` an unmapped metric (ignored),
/// `Err` a message that can't be used (with the reason).
pub fn decode_prom_json(
    bytes: &[u8],
    names: &MetricNames,
) -> Result<Option<MetricPoint>, RecordErrorOrDecode> {
    let sample: Sample = serde_json::from_slice(bytes)
        .map_err(|e| RecordErrorOrDecode::Decode(DecodeError::from(e)))?;
    let resource = names
        .resource(&sample.name)
        .or_else(|| names.resource(&sample.name.replace('_', ".")));
    let Some(resource) = resource else {
        return Ok(None);
    };
    let bad = |reason: String| {
        RecordErrorOrDecode::Record(RecordError {
            reason,
            record: String::from_utf8_lossy(bytes).chars().take(512).collect(),
        })
    };
    let label = |keys: &[&str]| keys.iter().find_map(|k| sample.labels.get(*k)).cloned();
    let service = label(&["service.name", "service_name", "job"])
        .ok_or_else(|| bad("missing service.name (labels service_name or job)".into()))?;
    let instance = label(&[
        "pod",
        "service.instance.id",
        "service_instance_id",
        "instance",
    ])
    .unwrap_or_else(|| service.clone());
    let time_ns = match &sample.timestamp {
        serde_json::Value::String(s) => {
            parse_rfc3339_ns(s).ok_or_else(|| bad(format!("bad timestamp `{s}`")))?
        }
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(|ms| ms.saturating_mul(1_000_000))
            .ok_or_else(|| bad(format!("bad timestamp {n}")))?,
        other => return Err(bad(format!("bad timestamp {other}"))),
    };
    let value = match &sample.value {
        serde_json::Value::String(s) => s.parse::<f64>().ok(),
        serde_json::Value::Number(n) => n.as_f64(),
        _ => None,
    }
    .ok_or_else(|| bad(format!("bad value {}", sample.value)))?;
    if !value.is_finite() {
        return Err(bad(format!("value {value} is not finite")));
    }
    if time_ns == 0 {
        return Err(bad("missing time".into()));
    }
    Ok(Some(MetricPoint {
        service,
        instance,
        resource,
        time_ns,
        value,
    }))
}

/// Why a prom_json message was rejected.
#[derive(Debug)]
pub enum RecordErrorOrDecode {
    Decode(DecodeError),
    Record(RecordError),
}

/// `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)` → ns since the epoch.
fn parse_rfc3339_ns(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut frac_ns: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        let padded: String = digits.chars().chain("000000000".chars()).take(9).collect();
        frac_ns = padded.parse().ok()?;
    }
    let offset_s = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (tz.get(1..3)?.parse::<i64>().ok()? * 3600
                + tz.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from civil (H. Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_s;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(frac_ns as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use augur_operators::records::Resource;

    #[test]
    fn adapter_sample_decodes() {
        let msg = br#"{"timestamp":"2024-02-29T23:59:59.123Z","value":"0.75","name":"container_cpu_utilization","labels":{"__name__":"container_cpu_utilization","job":"geo","instance":"geo-1"}}"#;
        let p = decode_prom_json(msg, &MetricNames::default())
            .expect("decodes")
            .expect("mapped");
        assert_eq!(p.service, "geo");
        assert_eq!(p.instance, "geo-1");
        assert_eq!(p.resource, Resource::Cpu);
        assert_eq!(p.time_ns, 1_709_251_199_123_000_000);
        assert_eq!(p.value, 0.75);
    }

    #[test]
    fn unmapped_is_ignored_and_bad_input_is_an_error() {
        let names = MetricNames::default();
        let unmapped = br#"{"timestamp":"2024-01-01T00:00:00Z","value":"1","name":"go_gc","labels":{"job":"a"}}"#;
        assert!(matches!(decode_prom_json(unmapped, &names), Ok(None)));
        let no_service = br#"{"timestamp":"2024-01-01T00:00:00Z","value":"1","name":"container_cpu_utilization","labels":{}}"#;
        assert!(matches!(
            decode_prom_json(no_service, &names),
            Err(RecordErrorOrDecode::Record(_))
        ));
        let nan = br#"{"timestamp":"2024-01-01T00:00:00Z","value":"NaN","name":"container_cpu_utilization","labels":{"job":"a"}}"#;
        assert!(decode_prom_json(nan, &names).is_err());
        assert!(matches!(
            decode_prom_json(b"\xff\x00", &names),
            Err(RecordErrorOrDecode::Decode(_))
        ));
        assert_eq!(
            parse_rfc3339_ns("2024-01-01T01:00:00+01:00"),
            parse_rfc3339_ns("2024-01-01T00:00:00Z")
        );
    }
}
