//! Reading JSON objects field by field: every error names its path, and the fields nobody read
//! are what is left over (the `extra` map of the canonical types).
//!
//! A nested object that is only partly modelled (OpenAI `stream_options`, Gemini
//! `generationConfig`) is read with [`Obj::object`] and, when keys remain, put back with
//! [`Obj::keep`]; encoders merge the modelled keys back in with `nested`.

use crate::LlmError;
use serde_json::{Map, Value};

pub(crate) use crate::chat::Extra;

/// `path.key` (or `key` at the root).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `path[i]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A field error.
pub(crate) fn invalid(at: &str, reason: impl Into<String>) -> LlmError {
    LlmError::Invalid {
        at: if at.is_empty() {
            "body".to_string()
        } else {
            at.to_string()
        },
        reason: reason.into(),
    }
}

/// Parses a body.
/// A field written either as a string or as an array (`items` names the array's elements in
/// the error), the shape of every provider's `content`.
pub(crate) enum TextOrItems {
    /// The string form.
    Text(String),
    /// The array form, elements unread.
    Items(Vec<Value>),
}

/// Reads a string-or-array field at `at`.
pub(crate) fn text_or_items(value: Value, at: &str, items: &str) -> Result<TextOrItems, LlmError> {
    match value {
        Value::String(s) => Ok(TextOrItems::Text(s)),
        Value::Array(a) => Ok(TextOrItems::Items(a)),
        other => Err(invalid(
            at,
            format!(
                "expected a string or an array of {items}, got {}",
                type_name(&other)
            ),
        )),
    }
}

/// Reads message content at `at`: text, or parts each decoded by `part` at its index.
pub(crate) fn content(
    value: Value,
    at: &str,
    items: &str,
    part: impl Fn(Value, &str) -> Result<crate::chat::Part, LlmError>,
) -> Result<crate::chat::Content, LlmError> {
    use crate::chat::Content;
    Ok(match text_or_items(value, at, items)? {
        TextOrItems::Text(s) => Content::Text(s),
        TextOrItems::Items(parts) => Content::Parts(
            parts
                .into_iter()
                .enumerate()
                .map(|(i, p)| part(p, &index(at, i)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

pub(crate) fn parse(body: &[u8]) -> Result<Value, LlmError> {
    serde_json::from_slice(body).map_err(|e| LlmError::Json(e.to_string()))
}

/// "a string", "an array", … for error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The value as an array, or an error naming `at`.
pub(crate) fn array(value: Value, at: &str) -> Result<Vec<Value>, LlmError> {
    match value {
        Value::Array(a) => Ok(a),
        other => Err(invalid(
            at,
            format!("expected an array, got {}", type_name(&other)),
        )),
    }
}

/// The value as a string, or an error naming `at`.
pub(crate) fn string(value: Value, at: &str) -> Result<String, LlmError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(invalid(
            at,
            format!("expected a string, got {}", type_name(&other)),
        )),
    }
}

/// A JSON object being read.
#[derive(Debug)]
pub(crate) struct Obj {
    map: Map<String, Value>,
    path: String,
}

impl Obj {
    /// The value as an object, or an error naming `path`.
    pub fn new(value: Value, path: &str) -> Result<Obj, LlmError> {
        match value {
            Value::Object(map) => Ok(Obj {
                map,
                path: path.to_string(),
            }),
            other => Err(invalid(
                path,
                format!("expected an object, got {}", type_name(&other)),
            )),
        }
    }

    /// Path of a field of this object.
    pub fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Removes a field; `null` counts as absent.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        match self.map.remove(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// Whether the field is present and not null.
    pub fn has(&self, key: &str) -> bool {
        !matches!(self.map.get(key), None | Some(Value::Null))
    }

    /// The field's value without removing it.
    pub fn peek(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// The field's string value without removing it.
    pub fn peek_str(&self, key: &str) -> Option<&str> {
        self.map.get(key).and_then(Value::as_str)
    }

    /// Puts a field back (a partly read nested object), unless it is an empty object.
    pub fn keep(&mut self, key: &str, rest: Extra) {
        if !rest.is_empty() {
            self.map.insert(key.to_string(), Value::Object(rest));
        }
    }

    /// Puts a field back whole (a shape the reader does not model).
    pub fn keep_value(&mut self, key: &str, value: Value) {
        self.map.insert(key.to_string(), value);
    }

    /// A field that must be present.
    pub fn required(&mut self, key: &str) -> Result<Value, LlmError> {
        self.take(key)
            .ok_or_else(|| invalid(&self.at(key), "required"))
    }

    /// An optional string.
    pub fn string(&mut self, key: &str) -> Result<Option<String>, LlmError> {
        self.take(key).map(|v| string(v, &self.at(key))).transpose()
    }

    /// A required string.
    pub fn req_string(&mut self, key: &str) -> Result<String, LlmError> {
        let v = self.required(key)?;
        string(v, &self.at(key))
    }

    /// An optional number.
    pub fn f64(&mut self, key: &str) -> Result<Option<f64>, LlmError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| invalid(&self.at(key), "not a finite number")),
            Some(other) => Err(invalid(
                &self.at(key),
                format!("expected a number, got {}", type_name(&other)),
            )),
        }
    }

    /// An optional non-negative integer.
    pub fn u64(&mut self, key: &str) -> Result<Option<u64>, LlmError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(u) => Ok(Some(u)),
                None => match n.as_f64() {
                    // Some servers write counts as 12.0.
                    Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => Ok(Some(f as u64)),
                    _ => Err(invalid(
                        &self.at(key),
                        format!("expected a non-negative integer, got {n}"),
                    )),
                },
            },
            Some(other) => Err(invalid(
                &self.at(key),
                format!("expected a non-negative integer, got {}", type_name(&other)),
            )),
        }
    }

    /// An optional non-negative integer that fits in 32 bits.
    pub fn u32(&mut self, key: &str) -> Result<Option<u32>, LlmError> {
        let at = self.at(key);
        self.u64(key)?
            .map(|v| u32::try_from(v).map_err(|_| invalid(&at, format!("{v} is too large"))))
            .transpose()
    }

    /// An optional integer (may be negative).
    pub fn i64(&mut self, key: &str) -> Result<Option<i64>, LlmError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| invalid(&self.at(key), format!("expected an integer, got {n}"))),
            Some(other) => Err(invalid(
                &self.at(key),
                format!("expected an integer, got {}", type_name(&other)),
            )),
        }
    }

    /// An optional boolean.
    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, LlmError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(invalid(
                &self.at(key),
                format!("expected a boolean, got {}", type_name(&other)),
            )),
        }
    }

    /// An optional array.
    pub fn array(&mut self, key: &str) -> Result<Option<Vec<Value>>, LlmError> {
        self.take(key).map(|v| array(v, &self.at(key))).transpose()
    }

    /// An optional nested object.
    pub fn object(&mut self, key: &str) -> Result<Option<Obj>, LlmError> {
        let at = self.at(key);
        self.take(key).map(|v| Obj::new(v, &at)).transpose()
    }

    /// A required nested object.
    pub fn req_object(&mut self, key: &str) -> Result<Obj, LlmError> {
        let at = self.at(key);
        let v = self.required(key)?;
        Obj::new(v, &at)
    }

    /// The fields nobody read.
    pub fn rest(self) -> Extra {
        self.map
    }
}

/// Lets `f` fill the object at `key` in `map` (created, or replacing a non-object, when
/// needed); an object left empty is removed.
pub(crate) fn nested(map: &mut Extra, key: &str, f: impl FnOnce(&mut Extra)) {
    let mut inner = match map.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    f(&mut inner);
    if !inner.is_empty() {
        map.insert(key.to_string(), Value::Object(inner));
    }
}

/// The starting map for encoding an object: its extra fields when encoding into the format
/// they came from, nothing otherwise.
pub(crate) fn base(extra: &Extra, native: bool) -> Extra {
    if native { extra.clone() } else { Map::new() }
}

/// Inserts `value` under `key` when it is `Some`.
pub(crate) fn put<T: Into<Value>>(map: &mut Extra, key: &str, value: Option<T>) {
    if let Some(v) = value {
        map.insert(key.to_string(), v.into());
    }
}

/// A tool call's JSON-text arguments as the object Anthropic and Gemini want (empty text is
/// `{}`); `at` names the field in errors.
pub(crate) fn arguments_object(arguments: &str, at: &str) -> Result<Value, LlmError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(invalid(
            at,
            format!(
                "tool arguments must be a JSON object, got {}",
                type_name(&other)
            ),
        )),
        Err(e) => Err(invalid(
            at,
            format!("tool arguments are not valid JSON ({e})"),
        )),
    }
}
