//! What a request asks to do, whichever face it came through: an [`Operation`]. The MCP face
//! decodes `tools/call` into [`Operation::CallTool`], the LLM face a chat completion into
//! [`Operation::ModelCall`], and so on; policy, limits, budgets and audit see only operations.

use crate::MicroUsd;
use serde::Serialize;
use serde_json::Value;

/// Which face an operation came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Face {
    /// The MCP gateway (`/mcp`, `/mcp/{virtual_server}`, `mcplane stdio`).
    Mcp,
    /// The model gateway (`/v1/…`).
    Llm,
}

/// A tool as policy sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolRef {
    /// The upstream server that owns it.
    pub server: String,
    /// Its name on that server.
    pub name: String,
    /// Its MCP annotations, with the spec's defaults filled in (`readOnlyHint` false,
    /// `destructiveHint` true, `idempotentHint` false, `openWorldHint` true).
    pub annotations: Value,
}

/// One thing a caller asks mcplane to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// `tools/list` (each listed tool is also checked as a [`Operation::CallTool`]).
    ListTools,
    /// `tools/call`.
    CallTool {
        /// The tool.
        tool: ToolRef,
        /// The call's arguments.
        arguments: Value,
    },
    /// `prompts/list`.
    ListPrompts,
    /// `prompts/get`.
    GetPrompt {
        /// The owning server.
        server: String,
        /// The prompt's name there.
        name: String,
    },
    /// `resources/list` or `resources/templates/list`.
    ListResources,
    /// `resources/read` (and subscriptions).
    ReadResource {
        /// The owning server.
        server: String,
        /// The resource's URI there.
        uri: String,
    },
    /// `GET /v1/models` (each listed model is also checked as a [`Operation::ModelCall`]).
    ListModels,
    /// A chat or messages call.
    ModelCall {
        /// The model id or alias asked for.
        model: String,
        /// Estimated prompt + completion tokens.
        estimated_tokens: u64,
        /// Estimated cost.
        estimated_cost: MicroUsd,
    },
    /// An embeddings call.
    Embed {
        /// The model id.
        model: String,
        /// Estimated input tokens.
        estimated_tokens: u64,
    },
}

impl Operation {
    /// Its kind as policy writes it (`call_tool`, `model_call`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::ListTools => "list_tools",
            Operation::CallTool { .. } => "call_tool",
            Operation::ListPrompts => "list_prompts",
            Operation::GetPrompt { .. } => "get_prompt",
            Operation::ListResources => "list_resources",
            Operation::ReadResource { .. } => "read_resource",
            Operation::ListModels => "list_models",
            Operation::ModelCall { .. } => "model_call",
            Operation::Embed { .. } => "embed",
        }
    }

    /// The face it belongs to.
    pub fn face(&self) -> Face {
        match self {
            Operation::ListModels | Operation::ModelCall { .. } | Operation::Embed { .. } => {
                Face::Llm
            }
            _ => Face::Mcp,
        }
    }

    /// The operation as one JSON object, the shape policy conditions read as `operation`:
    /// `kind`, `face`, and per kind `server`, `tool` (`server`, `name`, `annotations`),
    /// `arguments`, `prompt`, `uri`, `model`, `estimated_tokens`, `estimated_cost_usd`.
    pub fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("kind".into(), self.kind().into());
        o.insert(
            "face".into(),
            match self.face() {
                Face::Mcp => "mcp",
                Face::Llm => "llm",
            }
            .into(),
        );
        match self {
            Operation::CallTool { tool, arguments } => {
                o.insert("server".into(), tool.server.clone().into());
                o.insert(
                    "tool".into(),
                    serde_json::to_value(tool).unwrap_or_default(),
                );
                o.insert("arguments".into(), arguments.clone());
            }
            Operation::GetPrompt { server, name } => {
                o.insert("server".into(), server.clone().into());
                o.insert("prompt".into(), name.clone().into());
            }
            Operation::ReadResource { server, uri } => {
                o.insert("server".into(), server.clone().into());
                o.insert("uri".into(), uri.clone().into());
            }
            Operation::ModelCall {
                model,
                estimated_tokens,
                estimated_cost,
            } => {
                o.insert("model".into(), model.clone().into());
                o.insert("estimated_tokens".into(), (*estimated_tokens).into());
                o.insert("estimated_cost_usd".into(), estimated_cost.to_usd().into());
            }
            Operation::Embed {
                model,
                estimated_tokens,
            } => {
                o.insert("model".into(), model.clone().into());
                o.insert("estimated_tokens".into(), (*estimated_tokens).into());
            }
            Operation::ListTools
            | Operation::ListPrompts
            | Operation::ListResources
            | Operation::ListModels => {}
        }
        Value::Object(o)
    }
}

/// A tool's MCP annotations with the spec's defaults filled in for the hints it leaves out.
pub fn annotations_with_defaults(annotations: Option<&Value>) -> Value {
    let mut a = annotations
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (hint, default) in [
        ("readOnlyHint", false),
        ("destructiveHint", true),
        ("idempotentHint", false),
        ("openWorldHint", true),
    ] {
        a.entry(hint).or_insert(default.into());
    }
    Value::Object(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn annotation_defaults_follow_the_spec_and_keep_what_is_given() {
        let a = annotations_with_defaults(Some(&json!({"readOnlyHint": true, "title": "t"})));
        assert_eq!(
            a,
            json!({"readOnlyHint": true, "title": "t", "destructiveHint": true,
                   "idempotentHint": false, "openWorldHint": true})
        );
    }

    #[test]
    fn operations_render_for_policy() {
        let op = Operation::CallTool {
            tool: ToolRef {
                server: "files".into(),
                name: "rm".into(),
                annotations: annotations_with_defaults(None),
            },
            arguments: json!({"path": "/"}),
        };
        let v = op.to_json();
        assert_eq!(v["kind"], "call_tool");
        assert_eq!(v["face"], "mcp");
        assert_eq!(v["tool"]["annotations"]["destructiveHint"], true);
        let m = Operation::ModelCall {
            model: "gpt-4o".into(),
            estimated_tokens: 100,
            estimated_cost: MicroUsd::from_micros(2500),
        }
        .to_json();
        assert_eq!(m["face"], "llm");
        assert_eq!(m["estimated_cost_usd"], 0.0025);
    }
}
