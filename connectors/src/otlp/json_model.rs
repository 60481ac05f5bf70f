//! Lenient serde building blocks for OTLP/JSON, borrowing from the input where possible:
//! strings ([`Str`]), 64-bit integers given as strings or numbers ([`U64`], [`I64`]),
//! enums given as integers or names ([`EnumInt`]), doubles including `"NaN"`/`"Infinity"`
//! ([`F64`]), and attribute lists reduced to the keys augur reads ([`Attrs`]). In: JSON
//! tokens; out: these values, or a serde error naming what was expected.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};

use super::metrics::SeriesKey;
use super::view::{NET_PEER_NAME, PEER_SERVICE, ResourceAttrs, SERVER_ADDRESS};

/// A JSON string, borrowed unless it had escapes.
#[derive(Debug, Default)]
pub(crate) struct Str<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl Str<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A u64 given as a JSON number or a decimal string (OTLP/JSON writes fixed64 as strings).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct U64(pub u64);

impl<'de> Deserialize<'de> for U64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = U64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an unsigned integer, as a number or a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<U64, E> {
                Ok(U64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<U64, E> {
                u64::try_from(v)
                    .map(U64)
                    .map_err(|_| E::custom(format!("negative value {v}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<U64, E> {
                if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                    Ok(U64(v as u64))
                } else {
                    Err(E::custom(format!("{v} is not an unsigned integer")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<U64, E> {
                v.parse()
                    .map(U64)
                    .map_err(|_| E::custom(format!("{v:?} is not an unsigned integer")))
            }
        }
        d.deserialize_any(V)
    }
}

/// An i64 given as a JSON number or a decimal string.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct I64(pub i64);

impl<'de> Deserialize<'de> for I64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = I64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer, as a number or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<I64, E> {
                Ok(I64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<I64, E> {
                i64::try_from(v)
                    .map(I64)
                    .map_err(|_| E::custom(format!("{v} is out of range for int64")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<I64, E> {
                v.parse()
                    .map(I64)
                    .map_err(|_| E::custom(format!("{v:?} is not an integer")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A double: a JSON number, or `"NaN"`, `"Infinity"`, `"-Infinity"` (or a numeric string).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct F64(pub f64);

impl<'de> Deserialize<'de> for F64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = F64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, or \"NaN\", \"Infinity\", \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<F64, E> {
                Ok(F64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<F64, E> {
                Ok(F64(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<F64, E> {
                Ok(F64(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<F64, E> {
                match v {
                    "NaN" => Ok(F64(f64::NAN)),
                    "Infinity" => Ok(F64(f64::INFINITY)),
                    "-Infinity" => Ok(F64(f64::NEG_INFINITY)),
                    _ => v
                        .parse()
                        .map(F64)
                        .map_err(|_| E::custom(format!("{v:?} is not a number"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// An enum: its number (OTLP/JSON), or its proto name (`SPAN_KIND_SERVER`,
/// `STATUS_CODE_ERROR`), which some writers use.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EnumInt(pub i32);

fn enum_by_name(name: &str) -> Option<i32> {
    Some(match name {
        "SPAN_KIND_UNSPECIFIED" | "STATUS_CODE_UNSET" => 0,
        "SPAN_KIND_INTERNAL" | "STATUS_CODE_OK" => 1,
        "SPAN_KIND_SERVER" | "STATUS_CODE_ERROR" => 2,
        "SPAN_KIND_CLIENT" => 3,
        "SPAN_KIND_PRODUCER" => 4,
        "SPAN_KIND_CONSUMER" => 5,
        _ => return None,
    })
}

impl<'de> Deserialize<'de> for EnumInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = EnumInt;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an enum number or name")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnumInt, E> {
                i32::try_from(v)
                    .map(EnumInt)
                    .map_err(|_| E::custom(format!("enum value {v} out of range")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnumInt, E> {
                i32::try_from(v)
                    .map(EnumInt)
                    .map_err(|_| E::custom(format!("enum value {v} out of range")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnumInt, E> {
                enum_by_name(v)
                    .or_else(|| v.parse().ok())
                    .map(EnumInt)
                    .ok_or_else(|| E::custom(format!("unknown enum value {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `{"stringValue": ...}`; other value types are skipped.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyValue<'a> {
    #[serde(borrow, default, alias = "string_value")]
    string_value: Option<Str<'a>>,
}

/// One attribute.
#[derive(serde::Deserialize)]
struct KeyValue<'a> {
    #[serde(borrow, default)]
    key: Option<Str<'a>>,
    #[serde(borrow, default)]
    value: Option<AnyValue<'a>>,
}

/// The span attributes augur reads beside the resource keys, after [`ResourceAttrs::KEYS`]
/// in [`Attrs`]' numbering.
const SPAN_KEYS: [&str; 3] = [PEER_SERVICE, SERVER_ADDRESS, NET_PEER_NAME];

/// An attribute list, keeping only the string attributes augur reads: each as its key's
/// number ([`ResourceAttrs::KEYS`], then [`SPAN_KEYS`]) and value. A list of the few that
/// are present, not a slot per key: a record with none costs nothing beyond the list's
/// three words, so a message of many small records stays small while it is parsed.
#[derive(Debug, Default)]
pub(crate) struct Attrs<'a> {
    kept: Vec<(u8, Str<'a>)>,
}

impl Attrs<'_> {
    /// The value kept for key number `key`.
    fn get(&self, key: usize) -> Option<&str> {
        self.kept
            .iter()
            .find(|(k, _)| usize::from(*k) == key)
            .map(|(_, v)| v.as_str())
    }

    /// The resource attributes, set in the list's order as the protobuf decoder sets them:
    /// of two keys for one slot (`k8s.pod.name` and Prometheus' `pod`), the later wins.
    pub fn resource(&self) -> ResourceAttrs<'_> {
        let mut r = ResourceAttrs::default();
        for (k, v) in &self.kept {
            if let Some(key) = ResourceAttrs::KEYS.get(usize::from(*k)) {
                r.set(key, v.as_str());
            }
        }
        r
    }

    /// `peer.service`, if set.
    pub fn peer_service(&self) -> Option<&str> {
        self.get(ResourceAttrs::KEYS.len())
    }

    /// `server.address`, else `net.peer.name`, if set.
    pub fn peer_address(&self) -> Option<&str> {
        self.get(ResourceAttrs::KEYS.len() + 1)
            .or_else(|| self.get(ResourceAttrs::KEYS.len() + 2))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Attrs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Attrs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of attributes")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Attrs::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut attrs = Attrs::default();
                while let Some(kv) = seq.next_element::<KeyValue<'de>>()? {
                    if let (Some(key), Some(value)) = (kv.key, kv.value) {
                        attrs.keep(key, value.string_value);
                    }
                }
                Ok(attrs)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'a> Attrs<'a> {
    /// Keeps the attribute if augur reads it; a later value of a key replaces an earlier
    /// one, and a key without a string value clears it.
    fn keep(&mut self, key: Str<'a>, value: Option<Str<'a>>) {
        let key = key.as_str();
        let Some(number) = ResourceAttrs::KEYS
            .iter()
            .chain(&SPAN_KEYS)
            .position(|k| *k == key)
        else {
            return;
        };
        // At most 12 keys: the number fits a byte.
        let number = number as u8;
        self.kept.retain(|(k, _)| *k != number);
        if let Some(value) = value {
            self.kept.push((number, value));
        }
    }
}

/// A metric data point's attribute list: the attributes augur reads, and the series key of
/// all its string attributes (what tells `direction = receive` from `transmit`).
#[derive(Debug, Default)]
pub(crate) struct PointAttrs<'a> {
    pub attrs: Attrs<'a>,
    pub series: SeriesKey,
}

impl<'de: 'a, 'a> Deserialize<'de> for PointAttrs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PointAttrs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of attributes")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(PointAttrs::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut point = PointAttrs::default();
                while let Some(kv) = seq.next_element::<KeyValue<'de>>()? {
                    if let (Some(key), Some(value)) = (kv.key, kv.value) {
                        if let Some(v) = &value.string_value {
                            point
                                .series
                                .attr(key.as_str().as_bytes(), v.as_str().as_bytes());
                        }
                        point.attrs.keep(key, value.string_value);
                    }
                }
                Ok(point)
            }
        }
        d.deserialize_any(V)
    }
}

/// A sum's `aggregationTemporality`: the enum's number, or its name (as protobuf's JSON
/// mapping writes it).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Temporality(pub u64);

impl<'de> Deserialize<'de> for Temporality {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Temporality;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an aggregation temporality, as a number or a name")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Temporality, E> {
                Ok(Temporality(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Temporality, E> {
                Ok(Temporality(u64::try_from(v).unwrap_or(0)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Temporality, E> {
                Ok(Temporality(match v {
                    "AGGREGATION_TEMPORALITY_DELTA" => 1,
                    "AGGREGATION_TEMPORALITY_CUMULATIVE" => 2,
                    other => other.parse().unwrap_or(0),
                }))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list whose elements are skipped but counted (data points of ignored metrics).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_any(V)
    }
}
