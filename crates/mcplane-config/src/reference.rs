//! The configuration reference (`docs/config-reference.md`), generated from [`json_schema`].
//!
//! Walks the JSON Schema from the root: every key path with its type, default and description
//! (the spec types' doc comments). Lists are shown as `key[]`, maps as `key.<name>`. A test keeps
//! the checked-in file current.

use crate::json_schema;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// One table row.
struct Row {
    path: String,
    ty: String,
    default: String,
    description: String,
}

/// Renders the whole reference as Markdown.
pub fn reference_markdown() -> String {
    let schema = json_schema();
    let walker = Walker {
        defs: schema.get("$defs").and_then(Value::as_object),
    };
    let mut out = String::new();
    out.push_str("# mcplane configuration reference\n\n");
    out.push_str(
        "<!-- Generated from the config types by `crates/mcplane-config` (`reference_markdown`).\n     \
         Do not edit by hand: change the doc comments, then run\n     \
         MCPLANE_BLESS=1 cargo test -p mcplane-config --test generated_docs -->\n\n",
    );
    out.push_str(&one_line(
        schema
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or(""),
    ));
    out.push_str(
        "\n\nOne YAML file (`mcplane serve --config FILE`, checked by `mcplane check --config FILE`). \
         `${NAME}` is replaced by the environment variable `NAME` (an error if unset), \
         `${NAME:-default}` falls back to `default`, and `$${` writes a literal `${`. \
         Every mapping rejects unknown keys, and every error names its key path \
         (e.g. `models[0].cost.input_per_1k`). \
         The JSON Schema of this file is `docs/mcplane.schema.json`.\n\n\
         Key paths: `key[]` is each element of a list, `key.<name>` each entry of a mapping \
         whose keys you choose. Sections marked *not active yet* are validated but not acted on \
         by this build; `mcplane check` says so.\n",
    );
    let required = required_of(&schema);
    for (key, prop) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let _ = write!(out, "\n## `{key}`\n\n");
        let mut rows = Vec::new();
        walker.walk(prop, key, required.contains(&key.as_str()), &mut rows, 0);
        if let Some(first) = rows.first() {
            let _ = writeln!(out, "{}\n", first.description);
        }
        out.push_str("| Key | Type | Default | Description |\n|---|---|---|---|\n");
        for r in &rows {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                r.path,
                cell(&r.ty),
                cell(&r.default),
                cell(&r.description)
            );
        }
    }
    out
}

struct Walker<'a> {
    defs: Option<&'a Map<String, Value>>,
}

impl<'a> Walker<'a> {
    /// Follows a `$ref` into `$defs`.
    fn resolve(&self, node: &'a Value) -> &'a Value {
        let mut node = node;
        for _ in 0..8 {
            let Some(name) = node
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
            else {
                break;
            };
            match self.defs.and_then(|d| d.get(name)) {
                Some(def) => node = def,
                None => break,
            }
        }
        node
    }

    fn ref_name(node: &Value) -> Option<&str> {
        node.get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
    }

    /// The alternatives of a node other than `null` (one for a plain `Option<T>`).
    fn variants(&self, node: &'a Value) -> Vec<&'a Value> {
        match node.get("anyOf").and_then(Value::as_array) {
            Some(list) => list.iter().filter(|v| !is_null(v)).collect(),
            None => vec![node],
        }
    }

    /// A short human type for a node.
    fn type_of(&self, node: &'a Value) -> String {
        let vs = self.variants(node);
        if vs.len() != 1 {
            return vs
                .iter()
                .map(|v| self.type_of(v))
                .collect::<Vec<_>>()
                .join(" or ");
        }
        let node = vs[0];
        match Self::ref_name(node) {
            Some("Duration") => return "duration".into(),
            Some("Secret") => return "secret".into(),
            _ => {}
        }
        let node = self.resolve(node);
        if let Some(values) = enum_values(node) {
            return values
                .iter()
                .map(|v| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(" | ");
        }
        if node.get("anyOf").is_some() {
            return self.type_of(node);
        }
        let ty = match node.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("any"),
            _ => "any",
        };
        match ty {
            "array" => match node.get("items") {
                Some(items) => format!("list of {}", self.type_of(items)),
                None => "list".into(),
            },
            "object" => match node.get("additionalProperties") {
                Some(ap) if ap.is_object() => format!("map of {}", self.type_of(ap)),
                _ => "mapping".into(),
            },
            "integer" => {
                if node.get("minimum").and_then(Value::as_f64) == Some(0.0) {
                    "integer ≥ 0".into()
                } else {
                    "integer".into()
                }
            }
            other => other.into(),
        }
    }

    fn description(&self, node: &'a Value) -> String {
        let own = node.get("description").and_then(Value::as_str);
        let vs = self.variants(node);
        let target = if vs.len() == 1 {
            self.resolve(vs[0])
        } else {
            node
        };
        let mut text = one_line(
            own.or_else(|| target.get("description").and_then(Value::as_str))
                .unwrap_or(""),
        );
        // Documented enum values: list what each means.
        if let Some(list) = target.get("oneOf").and_then(Value::as_array) {
            let docs: Vec<String> = list
                .iter()
                .filter_map(|v| {
                    let c = v.get("const").and_then(Value::as_str)?;
                    let d = v.get("description").and_then(Value::as_str)?;
                    Some(format!("`{c}`: {}", one_line(d)))
                })
                .collect();
            if !docs.is_empty() {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&docs.join(" "));
            }
        }
        text
    }

    fn walk(&self, node: &'a Value, path: &str, required: bool, rows: &mut Vec<Row>, depth: usize) {
        let default = match node.get("default") {
            Some(v) => format!("`{}`", yaml_inline(v)),
            None if required => "required".into(),
            None => String::new(),
        };
        rows.push(Row {
            path: path.to_string(),
            ty: self.type_of(node),
            default,
            description: self.description(node),
        });
        self.children(node, path, rows, depth);
    }

    /// Rows for what is inside a node: its properties, list elements, map entries.
    fn children(&self, node: &'a Value, path: &str, rows: &mut Vec<Row>, depth: usize) {
        if depth > 12 {
            return;
        }
        for v in self.variants(node) {
            let v = self.resolve(v);
            if v.get("anyOf").is_some() {
                self.children(v, path, rows, depth + 1);
                continue;
            }
            if let Some(props) = v.get("properties").and_then(Value::as_object) {
                let required = required_of(v);
                for (key, child) in props {
                    let child_path = format!("{path}.{key}");
                    self.walk(
                        child,
                        &child_path,
                        required.contains(&key.as_str()),
                        rows,
                        depth + 1,
                    );
                }
            }
            if let Some(items) = v.get("items").filter(|i| i.is_object()) {
                self.children(items, &format!("{path}[]"), rows, depth + 1);
            }
            if let Some(ap) = v.get("additionalProperties").filter(|a| a.is_object()) {
                let child_path = format!("{path}.<name>");
                if self.has_children(ap) {
                    self.children(ap, &child_path, rows, depth + 1);
                }
            }
        }
    }

    fn has_children(&self, node: &'a Value) -> bool {
        self.variants(node).iter().any(|v| {
            let v = self.resolve(v);
            v.get("properties").is_some()
                || v.get("anyOf").is_some()
                || v.get("items").is_some_and(|i| self.has_children(i))
        })
    }
}

fn required_of(node: &Value) -> Vec<&str> {
    node.get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn is_null(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("null")
}

/// The allowed values of a string enum (`enum: [...]` or `oneOf` of `const`s).
fn enum_values(node: &Value) -> Option<Vec<String>> {
    if let Some(list) = node.get("enum").and_then(Value::as_array) {
        return Some(list.iter().map(yaml_inline).collect());
    }
    let list = node.get("oneOf").and_then(Value::as_array)?;
    list.iter()
        .map(|v| v.get("const").map(yaml_inline))
        .collect()
}

/// A value as YAML flow syntax (`10s`, `[chat, tools]`, `true`).
fn yaml_inline(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(yaml_inline).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{ {} }}",
            o.iter()
                .map(|(k, v)| format!("{k}: {}", yaml_inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_lists_nested_paths_types_and_defaults() {
        let md = reference_markdown();
        for needle in [
            "## `mcp`",
            "| `mcp.naming.prefix` | `always` \\| `when_needed` \\| `never` | `always` |",
            "| `models[].cost.input_per_1k` | number | required |",
            "| `mcp.servers.<name>.timeouts.call` | duration | `60s` |",
            "| `models[].endpoints[].api_key` | secret |",
            "| `policies[].then` | `allow` \\| `deny` \\| `require_approval` or mapping | required |",
            "| `policies[].then.route_to` |",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
    }
}
