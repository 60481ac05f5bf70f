//! What the text of a log line says besides its message: a leading timestamp and level,
//! and the statement that follows them; or, for a structured (JSON) line, its level and
//! message fields.
//!
//! Many pipelines ship log lines as their application printed them, with no severity field
//! (the Collector's filelog receiver without a severity parser, Fluent Bit's tail input):
//! the level is then only in the text, where it also sits in front of what identifies the
//! log statement. Both template mining ([`statement`]) and the severity of a record without
//! one ([`leading_severity`]) read that prefix the same way. A JSON line (logrus, zap,
//! pino, bunyan; or an OTLP body that is a map) names both: `level` / `severity` and `msg`
//! / `message`.

use std::borrow::Cow;

use crate::records::Severity;

/// Keys of a structured line's level, and of its message, in the order they are looked up.
const LEVEL_KEYS: [&str; 5] = ["level", "severity", "lvl", "loglevel", "log.level"];
const MESSAGE_KEYS: [&str; 4] = ["msg", "message", "log", "event"];

/// A structured line's level and message, if `body` is a JSON object (with either).
fn structured(body: &str) -> Option<(Option<Severity>, Option<String>)> {
    let body = body.trim();
    if !body.starts_with('{') {
        return None;
    }
    let Structured { level, message } = serde_json::from_str(body).ok()?;
    let level = level.and_then(|(_, v)| match v {
        serde_json::Value::String(s) => Severity::from_text(&s),
        // pino and bunyan: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal.
        serde_json::Value::Number(n) => match n.as_u64()? {
            10 => Some(Severity::Trace),
            20 => Some(Severity::Debug),
            30 => Some(Severity::Info),
            40 => Some(Severity::Warn),
            50 => Some(Severity::Error),
            60 => Some(Severity::Fatal),
            _ => None,
        },
        _ => None,
    });
    let message = message.map(|(_, m)| m);
    (level.is_some() || message.is_some()).then_some((level, message))
}

/// Of a JSON object, only the value of its first level key and the string of its first
/// message key (by the keys' order of lookup); every other field is skipped unread, so a
/// line with many fields costs no tree of values (this runs for every JSON log line).
struct Structured {
    level: Option<(usize, serde_json::Value)>,
    message: Option<(usize, String)>,
}

/// A key of a structured line: which lookup it answers, and how early in its list.
enum Key {
    Level(usize),
    Message(usize),
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<Key, E> {
                let rank = |keys: &[&str]| keys.iter().position(|k| *k == key);
                Ok(match (rank(&LEVEL_KEYS), rank(&MESSAGE_KEYS)) {
                    (Some(r), _) => Key::Level(r),
                    (None, Some(r)) => Key::Message(r),
                    (None, None) => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> serde::Deserialize<'de> for Structured {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Structured, D::Error> {
        struct MapVisitor;
        impl<'de> serde::de::Visitor<'de> for MapVisitor {
            type Value = Structured;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Structured, A::Error> {
                let earlier = |have: Option<usize>, rank: usize| have.is_none_or(|h| rank < h);
                let mut out = Structured {
                    level: None,
                    message: None,
                };
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Level(r) if earlier(out.level.as_ref().map(|l| l.0), r) => {
                            out.level = Some((r, map.next_value()?));
                        }
                        Key::Message(r) if earlier(out.message.as_ref().map(|m| m.0), r) => {
                            if let serde_json::Value::String(m) = map.next_value()? {
                                out.message = Some((r, m));
                            }
                        }
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(MapVisitor)
    }
}

/// Tokens of a line that identify its log statement: the logger, level and message come
/// first; what follows is mostly values, and a payload of varying length (a list of
/// records) would otherwise make one template per length.
pub const STATEMENT_TOKENS: usize = 16;

/// Leading tokens of a line that may be its own timestamp and level.
const MAX_PREFIX_TOKENS: usize = 4;

/// The level among the leading timestamp and level tokens of `body` (the first, if it
/// names two), and the rest after them (a line that is nothing but such tokens keeps its
/// last one as the rest). Allocates nothing: it runs for every log record.
fn prefix(body: &str) -> (Option<Severity>, &str) {
    let mut rest = body.trim_start();
    let mut level = None;
    for _ in 0..MAX_PREFIX_TOKENS {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let token = &rest[..end];
        if end == rest.len() {
            break;
        }
        match Severity::from_text(token) {
            Some(severity) => {
                level.get_or_insert(severity);
            }
            None if is_timestamp(token) => {}
            None => break,
        }
        rest = rest[end..].trim_start();
    }
    (level, rest)
}

/// The statement of a log line: its first [`STATEMENT_TOKENS`] whitespace-separated
/// tokens, after a leading timestamp and level. Those repeat the record's own time and
/// severity; left in, they are the first tokens of every line, which Drain's prefix tree
/// keys on, so statements of different loggers fall into one leaf and merge. Of a
/// structured line with a message, the statement of its message: its other fields are
/// values (times, ids, durations).
pub fn statement(body: &str) -> Cow<'_, str> {
    if let Some((_, Some(message))) = structured(body) {
        return Cow::Owned(first_tokens(&message).to_string());
    }
    Cow::Borrowed(first_tokens(prefix(body).1))
}

/// The first [`STATEMENT_TOKENS`] tokens of `rest`.
fn first_tokens(rest: &str) -> &str {
    match rest
        .char_indices()
        .filter(|&(i, c)| c.is_whitespace() && i > 0 && !rest[..i].ends_with(char::is_whitespace))
        .nth(STATEMENT_TOKENS - 1)
    {
        Some((end, _)) => &rest[..end],
        None => rest,
    }
}

/// The level a line states among its leading timestamp and level tokens
/// (`2023-01-29 18:11:08,820 [ERROR] c.Foo boom`, `18:11:08 warn: slow`), or in the level
/// field of a structured line (`{"level":"error","msg":"boom"}`), if any. A level word
/// later in the line is message text (`retrying after error`), not its severity.
pub fn leading_severity(body: &str) -> Option<Severity> {
    if let Some((level, _)) = structured(body) {
        return level;
    }
    prefix(body).0
}

/// A date, a time or both (`2023-01-29`, `18:11:08.820`, `2023-01-29T18:11:08Z`,
/// `[18:11:08]`): digits and separators only, with a separator.
fn is_timestamp(token: &str) -> bool {
    let t = token.trim_matches(|c| matches!(c, '[' | ']' | '(' | ')'));
    t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes().any(|b| matches!(b, b'-' | b':' | b'/'))
        && t.bytes().all(|b| {
            b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b',' | b'/' | b'T' | b'Z' | b'+')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_the_first_tokens_of_a_line() {
        assert_eq!(statement("a b  c"), "a b  c");
        let long: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        let line = long.join("  ");
        let cut = statement(&line);
        assert_eq!(cut.split_whitespace().count(), STATEMENT_TOKENS);
        assert!(cut.ends_with("t15"), "{cut}");
        assert_eq!(statement(""), "");
        assert_eq!(
            statement("2023-01-29 18:11:08,820 [INFO] c.Foo hello 12"),
            "c.Foo hello 12"
        );
        assert_eq!(statement("18:11:08.820 error: boom"), "boom");
        assert_eq!(
            statement("INFO"),
            "INFO",
            "a line that is only a level keeps it"
        );
        assert_eq!(statement("GET /cart 200"), "GET /cart 200");
        // A structured line: its message, not its times and ids.
        let line = |ts: &str, id: &str| {
            format!(
                r#"{{"severity":"info","timestamp":"{ts}","message":"request complete","http.req.id":"{id}"}}"#
            )
        };
        assert_eq!(
            statement(&line("2022-08-22T04:18:35Z", "a1")),
            "request complete"
        );
        assert_eq!(
            statement(&line("2022-08-22T04:18:36Z", "b2")),
            "request complete"
        );
        assert_eq!(
            statement(r#"{"level":"info"}"#),
            r#"{"level":"info"}"#,
            "no message: the line"
        );
        assert_eq!(
            statement(r#"{"msg":{"code":7},"message":"payment declined"}"#),
            "payment declined",
            "a message key that holds no text gives way to the next"
        );
    }

    #[test]
    fn the_leading_level_is_the_severity() {
        let cases = [
            (
                "2023-01-29 18:11:08,820 [ERROR] c.Foo boom",
                Some(Severity::Error),
            ),
            ("18:11:08.820 warn: slow", Some(Severity::Warn)),
            ("WARNING low disk", Some(Severity::Warn)),
            ("FATAL out of memory", Some(Severity::Fatal)),
            ("2023-01-29T18:11:08Z info started", Some(Severity::Info)),
            ("c.Foo retrying after ERROR", None),
            ("GET /cart 200", None),
            ("ERROR", None),
            ("", None),
            (
                r#"{"level":"error","ts":1675.2,"msg":"no contacts"}"#,
                Some(Severity::Error),
            ),
            (
                r#"{"severity":"warning","message":"slow","timestamp":"2022-08-22T04:18:35Z"}"#,
                Some(Severity::Warn),
            ),
            (
                r#"{"level":50,"time":1675,"msg":"boom"}"#,
                Some(Severity::Error),
            ),
            (r#"{"msg":"no level"}"#, None),
            // The first level key wins wherever it stands; nested fields are skipped.
            (
                r#"{"severity":"info","ctx":{"level":"debug"},"level":"error"}"#,
                Some(Severity::Error),
            ),
            ("{not json", None),
        ];
        for (line, want) in cases {
            assert_eq!(leading_severity(line), want, "{line:?}");
        }
    }
}
