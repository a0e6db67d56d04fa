//! `${ENV}` interpolation over the config text, before YAML parsing.
//!
//! `${NAME}` is replaced by the variable's value (an error if unset), `${NAME:-default}` falls back
//! to `default`, and `$${` writes a literal `${`. Interpolating the text (not the parsed tree)
//! keeps the rule simple and lets a variable fill any scalar.

use crate::ConfigError;

/// Replaces `${NAME}` / `${NAME:-default}` in `text` using `env`.
pub fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let line_of = |consumed: &str| text[..text.len() - consumed.len()].matches('\n').count() + 1;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(lit) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = lit;
        } else if let Some(body) = after.strip_prefix("${") {
            let line = line_of(after);
            let end = body
                .find('}')
                .ok_or_else(|| ConfigError::BadInterpolation {
                    line,
                    reason: "missing closing '}'".into(),
                })?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(ConfigError::BadInterpolation {
                    line,
                    reason: format!("{inner:?} is not a variable name (letters, digits, '_')"),
                });
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(ConfigError::MissingEnv {
                        name: name.to_string(),
                        line,
                    });
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    #[test]
    fn replaces_defaults_and_escapes() {
        let got = interpolate("a: ${TOKEN}\nb: ${NOPE:-x}\nc: $${TOKEN} $5", &env).unwrap();
        assert_eq!(got, "a: s3cret\nb: x\nc: ${TOKEN} $5");
    }

    #[test]
    fn missing_variable_names_line_and_variable() {
        let err = interpolate("a: 1\nb: ${NOPE}", &env).unwrap_err();
        assert_eq!(
            err,
            ConfigError::MissingEnv {
                name: "NOPE".into(),
                line: 2
            }
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(interpolate("a: ${TOKEN", &env).is_err());
        assert!(interpolate("a: ${1X}", &env).is_err());
        assert!(interpolate("a: ${}", &env).is_err());
    }
}
