//! [`SecretString`]: a config value (API key, signing key, database password) that never prints.
//!
//! `Debug`, `Display` and `Serialize` all write `[redacted]`; the value is reachable only through
//! [`SecretString::expose`], so a secret cannot leak through a log line, a panic message or a
//! config dump by accident. Write secrets as `${ENV}` references, not literals.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What every rendering of a secret shows instead of its value.
pub const REDACTED: &str = "[redacted]";

/// A string that never prints its value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The value, for the one place that must use it (a header, a signer).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (e.g. an unset `${VAR:-}`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        SecretString(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString({REDACTED})")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString)
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl JsonSchema for SecretString {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A secret. Never printed or logged; write it as a ${ENV} reference."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let s = SecretString::new("sk-live-123");
        assert_eq!(format!("{s}"), REDACTED);
        assert!(!format!("{s:?}").contains("sk-live"));
        assert!(!format!("{:?}", Some(&s)).contains("sk-live"));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{REDACTED}\"")
        );
        assert_eq!(s.expose(), "sk-live-123");
    }

    #[test]
    fn parses_from_yaml_scalars() {
        let s: SecretString = serde_yaml_ng::from_str("12345").unwrap();
        assert_eq!(s.expose(), "12345");
    }
}
