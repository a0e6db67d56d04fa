//! Small checks shared by the sections' lowering; each error names its key path.

use crate::ConfigError;
use std::collections::BTreeSet;

/// `at` joined with a field name, in the notation of parse errors (`models[0].cost`).
pub(crate) fn field(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

/// `at` joined with a list index (`models[0]`).
pub(crate) fn index(at: &str, i: usize) -> String {
    format!("{at}[{i}]")
}

/// A finite number ≥ 0.
pub(crate) fn non_negative(at: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            at,
            format!("{v} is out of range; expected a number ≥ 0"),
        ))
    }
}

/// A finite number in `0..=1`.
pub(crate) fn fraction(at: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            at,
            format!("{v} is out of range; expected a number from 0 to 1"),
        ))
    }
}

/// A non-empty string after trimming.
pub(crate) fn non_empty(at: &str, v: &str) -> Result<(), ConfigError> {
    if v.trim().is_empty() {
        Err(ConfigError::invalid(at, "must not be empty"))
    } else {
        Ok(())
    }
}

/// An identifier: non-empty, only `[A-Za-z0-9_.-]`.
pub(crate) fn ident(at: &str, v: &str) -> Result<(), ConfigError> {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            at,
            format!("{v:?} is not a valid id; expected one or more of [A-Za-z0-9_.-]"),
        ))
    }
}

/// A URL whose scheme is one of `schemes`.
pub(crate) fn url_with_scheme(
    at: &str,
    v: &str,
    schemes: &[&str],
) -> Result<url::Url, ConfigError> {
    let expected = schemes
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(", ");
    url::Url::parse(v)
        .ok()
        .filter(|u| schemes.contains(&u.scheme()))
        .ok_or_else(|| {
            ConfigError::invalid(
                at,
                format!("not a valid URL; expected one starting with {expected}"),
            )
        })
}

/// An `http(s)://` URL.
pub(crate) fn http_url(at: &str, v: &str) -> Result<url::Url, ConfigError> {
    url_with_scheme(at, v, &["https", "http"])
}

/// Records `v` as seen; an error naming `at` if it was seen before.
pub(crate) fn unique<'a>(
    seen: &mut BTreeSet<&'a str>,
    at: &str,
    v: &'a str,
    what: &str,
) -> Result<(), ConfigError> {
    if seen.insert(v) {
        Ok(())
    } else {
        Err(ConfigError::invalid(at, format!("duplicate {what} {v:?}")))
    }
}
