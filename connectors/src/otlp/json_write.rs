//! Small helpers that append JSON tokens to a `String`: escaped strings, OTLP string
//! attributes and doubles (NaN and infinities as the OTLP/JSON strings). In: values; out:
//! JSON text appended to the buffer. Used by the encoders and for record-error context.

use std::fmt::Write as _;

/// Appends `s` as a quoted, escaped JSON string.
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `{"key":<key>,"value":{"stringValue":<value>}}`.
pub(crate) fn push_string_attr(out: &mut String, key: &str, value: &str) {
    out.push_str("{\"key\":");
    push_str(out, key);
    out.push_str(",\"value\":{\"stringValue\":");
    push_str(out, value);
    out.push_str("}}");
}

/// Appends a u64 as a JSON string (the OTLP/JSON form of fixed64 / int64).
pub(crate) fn push_u64_str(out: &mut String, v: u64) {
    let _ = write!(out, "\"{v}\"");
}

/// Appends a double: a JSON number when finite (shortest form that round-trips), else
/// `"NaN"`, `"Infinity"` or `"-Infinity"` as OTLP/JSON specifies.
pub(crate) fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("\"NaN\"");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        // Debug prints the shortest round-tripping form, with an exponent when very large
        // or small (`1e300`, `1.5e-7`); both are valid JSON numbers.
        let _ = write!(out, "{v:?}");
    }
}

/// Appends `s` quoted and escaped, cut to at most `max` bytes (on a char boundary): for
/// error context, where the input may be arbitrarily long.
pub(crate) fn push_str_truncated(out: &mut String, s: &str, max: usize) {
    if s.len() <= max {
        push_str(out, s);
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        push_str(out, &s[..end]);
    }
}
