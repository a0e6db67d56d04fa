//! Config errors: each names the key path and what was expected.

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS reason.
        reason: String,
    },
    /// `${NAME}` referenced an unset variable.
    #[error(
        "line {line}: environment variable {name} is not set (referenced as ${{{name}}}; set it or use ${{{name}:-default}})"
    )]
    MissingEnv {
        /// Variable name.
        name: String,
        /// 1-based line.
        line: usize,
    },
    /// A `${` without a valid closing or name.
    #[error("line {line}: malformed ${{…}} reference: {reason}")]
    BadInterpolation {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// YAML syntax or shape error at a key path.
    #[error("{path}: {message}")]
    Invalid {
        /// Key path, e.g. `mcp.servers.files.command`.
        path: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl ConfigError {
    /// A validation error at `path`.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Rewrites serde's expectations that name Rust types (`expected f64`, `expected struct
/// CostSpec`, `expected u32`) into the words a config author uses.
pub(crate) fn humanize(message: &str) -> String {
    const EXPECTED: &str = "expected ";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(pos) = rest.find(EXPECTED) {
        let (before, after) = rest.split_at(pos + EXPECTED.len());
        out.push_str(before);
        let word_end = |s: &str| {
            s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(s.len())
        };
        let w = word_end(after);
        let (word, tail) = after.split_at(w);
        let replaced = match word {
            "f32" | "f64" => Some(("a number", tail)),
            "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => {
                Some(("a non-negative integer", tail))
            }
            "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => Some(("an integer", tail)),
            "struct" | "enum" | "tuple" | "unit" => {
                // `struct Name`, `tuple struct Name`, `unit struct Name`, `enum Name`
                let mut t = tail;
                let mut is_enum = word == "enum";
                for _ in 0..2 {
                    let trimmed = t.strip_prefix(' ').unwrap_or(t);
                    let n = word_end(trimmed);
                    if n == 0 {
                        break;
                    }
                    if &trimmed[..n] == "struct" {
                        t = &trimmed[n..];
                        continue;
                    }
                    is_enum |= &trimmed[..n] == "enum";
                    t = &trimmed[n..];
                    break;
                }
                let text = match (is_enum, word) {
                    (true, _) => "one of the allowed names",
                    (false, "tuple") => "a list",
                    (false, _) => "a mapping",
                };
                Some((text, t))
            }
            "a" if tail.starts_with(" YAML tag") => {
                let t = tail
                    .strip_prefix(" YAML tag starting with '!'")
                    .unwrap_or(tail);
                Some(("a plain value (one of the allowed names)", t))
            }
            _ => None,
        };
        match replaced {
            Some((text, tail)) => {
                out.push_str(text);
                rest = tail;
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::humanize;

    #[test]
    fn rust_type_names_become_words() {
        assert_eq!(
            humanize("invalid type: string \"x\", expected f64 at line 1 column 3"),
            "invalid type: string \"x\", expected a number at line 1 column 3"
        );
        assert_eq!(
            humanize("invalid value: integer `-1`, expected usize"),
            "invalid value: integer `-1`, expected a non-negative integer"
        );
        assert_eq!(
            humanize("invalid type: string \"x\", expected struct CostSpec at line 2"),
            "invalid type: string \"x\", expected a mapping at line 2"
        );
        assert_eq!(
            humanize("invalid type: sequence, expected a YAML tag starting with '!'"),
            "invalid type: sequence, expected a plain value (one of the allowed names)"
        );
        assert_eq!(humanize("expected i64"), "expected an integer");
        assert_eq!(
            humanize("expected enum Mode"),
            "expected one of the allowed names"
        );
        assert_eq!(
            humanize("expected tuple struct X, ok"),
            "expected a list, ok"
        );
        assert_eq!(humanize("expected unit struct X"), "expected a mapping");
        let untouched = "unknown field `x`, expected one of `a`, `b`";
        assert_eq!(humanize(untouched), untouched);
        assert_eq!(humanize("expected a string"), "expected a string");
    }
}
