//! `Mcp-Param-*` headers (2026-07-28 Streamable HTTP): tool parameters a server marks with
//! `x-mcp-header` in its `inputSchema` are mirrored by clients into `Mcp-Param-{Name}` headers,
//! so load balancers and gateways can route on them without reading the body. A server (mcplane,
//! for its clients) must check that each header matches the body ([`check`]); this module reads
//! the annotations ([`declared`]) and compares values after the Base64 sentinel is decoded.

use crate::protocol::decode_header_value;
use serde_json::Value;

/// Largest integer a mirrored parameter may hold (JavaScript's safe range).
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The JSON type of a mirrored parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// `string`: the value as is.
    String,
    /// `integer`: compared numerically.
    Integer,
    /// `boolean`: `true` / `false`.
    Boolean,
}

/// One parameter a tool mirrors into a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The `x-mcp-header` value: the header is `Mcp-Param-{name}`.
    pub name: String,
    /// The chain of `properties` keys from the schema root to the parameter.
    pub path: Vec<String>,
    /// Its declared type.
    pub kind: ParamType,
}

impl ParamHeader {
    /// The header's name, lowercased (HTTP field names are case-insensitive).
    pub fn header(&self) -> String {
        format!("mcp-param-{}", self.name.to_ascii_lowercase())
    }

    /// The parameter's value in a call's `arguments` (`None` when absent or `null`).
    fn value_in<'a>(&self, arguments: Option<&'a Value>) -> Option<&'a Value> {
        let mut at = arguments?;
        for key in &self.path {
            at = at.get(key)?;
        }
        (!at.is_null()).then_some(at)
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The parameters a tool's `inputSchema` mirrors into headers. An annotation that breaks the
/// spec's rules (not a token, duplicated, on a non-primitive or `number` parameter, or not
/// reachable through `properties` alone) makes the whole tool definition invalid: the error says
/// which.
pub fn declared(schema: &Value) -> Result<Vec<ParamHeader>, String> {
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), true, &mut out)?;
    let mut seen = std::collections::HashSet::new();
    for p in &out {
        if !seen.insert(p.name.to_ascii_lowercase()) {
            return Err(format!(
                "x-mcp-header {:?} is used twice (case-insensitively)",
                p.name
            ));
        }
    }
    Ok(out)
}

/// Collects annotations under `node`; `reachable` = reached through `properties` keys only.
fn walk(
    node: &Value,
    path: &mut Vec<String>,
    reachable: bool,
    out: &mut Vec<ParamHeader>,
) -> Result<(), String> {
    let Some(obj) = node.as_object() else {
        if let Some(items) = node.as_array() {
            for item in items {
                walk(item, path, false, out)?;
            }
        }
        return Ok(());
    };
    if let Some(name) = obj.get("x-mcp-header") {
        let at = if path.is_empty() {
            "the schema root".to_string()
        } else {
            path.join(".")
        };
        if !reachable || path.is_empty() {
            return Err(format!(
                "x-mcp-header at {at} is not reachable from the schema root through `properties` only"
            ));
        }
        let name = name
            .as_str()
            .filter(|n| !n.is_empty() && n.chars().all(is_tchar))
            .ok_or_else(|| format!("x-mcp-header at {at} is not an HTTP token: {name}"))?;
        let kind = match obj.get("type").and_then(Value::as_str) {
            Some("string") => ParamType::String,
            Some("integer") => ParamType::Integer,
            Some("boolean") => ParamType::Boolean,
            other => {
                return Err(format!(
                    "x-mcp-header {name:?} at {at} is on a parameter of type {}: only string, \
                     integer and boolean may be mirrored",
                    other.unwrap_or("(none)")
                ));
            }
        };
        out.push(ParamHeader {
            name: name.to_string(),
            path: path.clone(),
            kind,
        });
    }
    for (key, child) in obj {
        if key == "properties"
            && let Some(props) = child.as_object()
        {
            for (prop, schema) in props {
                path.push(prop.clone());
                walk(schema, path, reachable, out)?;
                path.pop();
            }
        } else if key != "x-mcp-header" && (child.is_object() || child.is_array()) {
            // Anything else (items, oneOf, $defs, if/then, …) is not statically reachable.
            walk(child, path, false, out)?;
        }
    }
    Ok(())
}

/// The client side: the `Mcp-Param-*` headers a `tools/call` with these `arguments` carries, as
/// (lowercased header name, value before encoding). Absent and `null` parameters, and values
/// not of the declared type (or integers outside JavaScript's safe range), give no header.
pub fn client_values(declared: &[ParamHeader], arguments: Option<&Value>) -> Vec<(String, String)> {
    declared
        .iter()
        .filter_map(|p| {
            let v = p.value_in(arguments)?;
            let text = match p.kind {
                ParamType::String => v.as_str()?.to_string(),
                ParamType::Integer => v
                    .as_i64()
                    .filter(|i| (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(i))?
                    .to_string(),
                ParamType::Boolean => v.as_bool()?.to_string(),
            };
            Some((p.header(), text))
        })
        .collect()
}

/// Checks a `tools/call`'s `Mcp-Param-*` headers against its `arguments`. `header` looks a
/// header up by lowercased name and gives its raw value, or why it is not visible ASCII. Returns
/// what is wrong, for a `HeaderMismatch` error.
pub fn check(
    declared: &[ParamHeader],
    arguments: Option<&Value>,
    header: impl Fn(&str) -> Option<Result<String, String>>,
) -> Result<(), String> {
    for p in declared {
        let display = format!("Mcp-Param-{}", p.name);
        let at = format!("arguments.{}", p.path.join("."));
        let body = p.value_in(arguments);
        let given = match header(&p.header()) {
            None => None,
            Some(raw) => Some(
                raw.and_then(|v| decode_header_value(&v))
                    .map_err(|why| format!("{display} {why}"))?,
            ),
        };
        match (given, body) {
            (None, None) => {}
            (None, Some(v)) => {
                return Err(format!(
                    "missing {display} header (the tool mirrors {at} into it; here {v})"
                ));
            }
            (Some(h), None) => {
                return Err(format!(
                    "{display} header is '{h}' but {at} is absent from the body"
                ));
            }
            (Some(h), Some(v)) => {
                if !matches(p.kind, &h, v) {
                    return Err(format!(
                        "{display} header value '{h}' does not match body {at} {v}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Whether a decoded header value equals a body value of the declared type.
fn matches(kind: ParamType, header: &str, body: &Value) -> bool {
    match (kind, body) {
        (ParamType::String, Value::String(s)) => header == s,
        (ParamType::Boolean, Value::Bool(b)) => header == if *b { "true" } else { "false" },
        (ParamType::Integer, Value::Number(n)) => {
            let (Ok(h), Some(b)) = (header.parse::<f64>(), n.as_f64()) else {
                return false;
            };
            h == b && b.fract() == 0.0 && b.abs() <= MAX_SAFE_INTEGER as f64
        }
        // A body value of another type than declared: compare its JSON text.
        (_, other) => {
            let text = other.to_string();
            header == text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "limit": {"type": "integer", "x-mcp-header": "Limit"},
                "dry": {"type": "boolean", "x-mcp-header": "Dry-Run"},
                "target": {"type": "object", "properties": {
                    "zone": {"type": "string", "x-mcp-header": "Zone"},
                }},
                "query": {"type": "string"},
            },
        })
    }

    fn run(args: Value, headers: &[(&str, &str)]) -> Result<(), String> {
        let declared = declared(&schema()).unwrap();
        let map: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        check(&declared, Some(&args), |name| {
            map.get(name).cloned().map(Ok)
        })
    }

    #[test]
    fn annotations_are_read_with_their_paths() {
        let d = declared(&schema()).unwrap();
        let names: Vec<_> = d
            .iter()
            .map(|p| (p.name.as_str(), p.path.join(".")))
            .collect();
        assert!(names.contains(&("Zone", "target.zone".to_string())));
        assert_eq!(d.len(), 4);
        assert_eq!(declared(&json!({"type": "object"})).unwrap(), vec![]);
    }

    #[test]
    fn invalid_annotations_make_the_tool_invalid() {
        for (schema, why) in [
            (
                json!({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}),
                "type number",
            ),
            (
                json!({"properties": {"a": {"type": "string", "x-mcp-header": "A B"}}}),
                "token",
            ),
            (
                json!({"properties": {"a": {"type": "string", "x-mcp-header": ""}}}),
                "token",
            ),
            (
                json!({"properties": {
                    "a": {"type": "string", "x-mcp-header": "Same"},
                    "b": {"type": "string", "x-mcp-header": "same"},
                }}),
                "twice",
            ),
            (
                json!({"properties": {"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "A"}}}}),
                "reachable",
            ),
            (
                json!({"oneOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]}),
                "reachable",
            ),
        ] {
            let err = declared(&schema).unwrap_err();
            assert!(err.contains(why), "{schema}: {err}");
        }
    }

    #[test]
    fn matching_headers_pass_in_every_encoding() {
        run(
            json!({"region": "us-west1"}),
            &[("Mcp-Param-Region", "us-west1")],
        )
        .unwrap();
        run(
            json!({"region": "Hello, 世界"}),
            &[("mcp-param-region", "=?base64?SGVsbG8sIOS4lueVjA==?=")],
        )
        .unwrap();
        run(
            json!({"region": " padded "}),
            &[("Mcp-Param-Region", "=?base64?IHBhZGRlZCA=?=")],
        )
        .unwrap();
        run(json!({"limit": 42}), &[("Mcp-Param-Limit", "42.0")]).unwrap();
        run(json!({"dry": false}), &[("Mcp-Param-Dry-Run", "false")]).unwrap();
        run(json!({"target": {"zone": "b"}}), &[("Mcp-Param-Zone", "b")]).unwrap();
        run(json!({"region": null, "query": "x"}), &[]).unwrap();
        // A literal that only looks like Base64 is compared as is.
        run(
            json!({"region": "SGVsbG8="}),
            &[("Mcp-Param-Region", "SGVsbG8=")],
        )
        .unwrap();
    }

    #[test]
    fn mismatches_say_what_is_wrong() {
        for (args, headers, why) in [
            (json!({"region": "eu"}), vec![], "missing Mcp-Param-Region"),
            (
                json!({}),
                vec![("Mcp-Param-Region", "eu")],
                "absent from the body",
            ),
            (
                json!({"region": "eu"}),
                vec![("Mcp-Param-Region", "us")],
                "does not match",
            ),
            (
                json!({"region": "Hello"}),
                vec![("Mcp-Param-Region", "=?base64?SGVsbG8?=")],
                "Base64",
            ),
            (
                json!({"region": "Hello"}),
                vec![("Mcp-Param-Region", "=?base64?SGVs!!!bG8=?=")],
                "Base64",
            ),
            (
                json!({"limit": 42}),
                vec![("Mcp-Param-Limit", "43")],
                "does not match",
            ),
            (
                json!({"limit": 42}),
                vec![("Mcp-Param-Limit", "forty")],
                "does not match",
            ),
            (
                json!({"dry": true}),
                vec![("Mcp-Param-Dry-Run", "TRUE")],
                "does not match",
            ),
        ] {
            let err = run(args.clone(), &headers).unwrap_err();
            assert!(err.contains(why), "{args} {headers:?}: {err}");
        }
    }
}
