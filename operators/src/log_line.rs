//! What the text of a log line says besides its message: a leading timestamp and level,
//! and the statement that follows them.
//!
//! Many pipelines ship log lines as their application printed them, with no severity field
//! (the Collector's filelog receiver without a severity parser, Fluent Bit's tail input):
//! the level is then only in the text, where it also sits in front of what identifies the
//! log statement. Both template mining ([`statement`]) and the severity of a record without
//! one ([`leading_severity`]) read that prefix the same way.

use crate::records::Severity;

/// Tokens of a line that identify its log statement: the logger, level and message come
/// first; what follows is mostly values, and a payload of varying length (a list of
/// records) would otherwise make one template per length.
pub const STATEMENT_TOKENS: usize = 16;

/// Leading tokens of a line that may be its own timestamp and level.
const MAX_PREFIX_TOKENS: usize = 4;

/// The leading timestamp and level tokens of `body`, and the rest after them (a line that
/// is nothing but such tokens keeps its last one as the rest).
fn prefix(body: &str) -> (impl Iterator<Item = &str>, &str) {
    let mut rest = body.trim_start();
    let mut tokens = Vec::new();
    for _ in 0..MAX_PREFIX_TOKENS {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let token = &rest[..end];
        if end == rest.len() || !(is_timestamp(token) || Severity::from_text(token).is_some()) {
            break;
        }
        tokens.push(token);
        rest = rest[end..].trim_start();
    }
    (tokens.into_iter(), rest)
}

/// The statement of a log line: its first [`STATEMENT_TOKENS`] whitespace-separated
/// tokens, after a leading timestamp and level. Those repeat the record's own time and
/// severity; left in, they are the first tokens of every line, which Drain's prefix tree
/// keys on, so statements of different loggers fall into one leaf and merge.
pub fn statement(body: &str) -> &str {
    let (_, rest) = prefix(body);
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
/// (`2023-01-29 18:11:08,820 [ERROR] c.Foo boom`, `18:11:08 warn: slow`), if any. A level
/// word later in the line is message text (`retrying after error`), not its severity.
pub fn leading_severity(body: &str) -> Option<Severity> {
    let (mut tokens, _) = prefix(body);
    tokens.find_map(Severity::from_text)
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
        ];
        for (line, want) in cases {
            assert_eq!(leading_severity(line), want, "{line:?}");
        }
    }
}
