//! What the suite's `--requirements 2026-07-28` server scenarios call beyond the session-era
//! names: the `input_required` tools and prompt (SEP-2322), and the diagnostics of
//! `server-stateless` (SEP-2575).
//!
//! The fixture stays a session-based server: a tool that needs input sends an ordinary
//! server→client request (`elicitation/create`, `sampling/createMessage`, `roots/list`) and
//! waits for the reply. Behind mcplane, a 2026-07-28 client gets that request as an
//! `input_required` entry and answers it on a retry — which is what these scenarios prove. Each
//! request names the `inputRequests` key the scenarios expect (`user_name`, `step1`, …) in
//! `params._meta["dev.mcplane/inputKey"]`; a session-based client ignores that hint. Served
//! directly to a 2026-07-28 client, the server core bridges the same requests itself.

use super::{CLIENT_REPLY_TIMEOUT, ConformanceFixture, LogLevel, STEP_DELAY, text_result};
use mcplane_mcp::jsonrpc::RpcError;
use mcplane_mcp::protocol::meta;
use mcplane_mcp::server::{Listening, RequestContext};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The tools the 2026-07-28 scenarios call, in `tools/list` order (after the session-era ones).
pub const TOOL_NAMES: [&str; 16] = [
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
    "test_missing_capability",
    "test_streaming_elicitation",
    "test_logging_tool",
    "test_trigger_tool_change",
    "test_trigger_prompt_change",
    "test_trigger_resource_update",
    "test_wait_for_cancel",
    CUSTOM_HEADER_TOOL,
];

/// The tool whose parameters are mirrored into `Mcp-Param-*` headers (`x-mcp-header`,
/// `http-custom-header-server-validation`): `region` (string) → `Mcp-Param-Region`, `priority`
/// (integer) → `Mcp-Param-Priority`, `dry_run` (boolean) → `Mcp-Param-Dry-Run`.
pub const CUSTOM_HEADER_TOOL: &str = "test_custom_header";

/// The prompt of `input-required-result-non-tool-request`.
pub const PROMPT_NAME: &str = "test_input_required_result_prompt";

/// A `subscriptions/listen` stream of a client served directly in 2026-07-28.
#[derive(Debug)]
pub(super) struct Listener {
    tools: bool,
    prompts: bool,
    uris: Vec<String>,
    tx: mpsc::Sender<Value>,
}

fn describe(name: &str) -> &'static str {
    match name {
        "test_input_required_result_elicitation" => {
            "Asks the user's name (elicitation, input key user_name) and greets them"
        }
        "test_input_required_result_sampling" => {
            "Asks the client's LLM for the capital of France (sampling, input key capital_question)"
        }
        "test_input_required_result_list_roots" => {
            "Lists the client's roots (roots/list, input key client_roots)"
        }
        "test_input_required_result_request_state" => {
            "Asks for a confirmation (input key confirm); answers state-ok"
        }
        "test_input_required_result_multiple_inputs" => {
            "Asks for a name, a sampled greeting and the roots at once"
        }
        "test_input_required_result_multi_round" => {
            "Asks for a name (step1), then a favourite colour (step2)"
        }
        "test_input_required_result_tampered_state" => {
            "Asks for a confirmation (input key confirm); the retry's state is verified"
        }
        "test_input_required_result_capabilities" => {
            "Asks by elicitation and by sampling; uses whichever the client supports"
        }
        "test_missing_capability" => {
            "Needs sampling: fails with MissingRequiredClientCapability (-32021) without it"
        }
        "test_streaming_elicitation" => "Asks for input by elicitation (input key user_input)",
        "test_logging_tool" => "Sends three log messages, then answers",
        "test_trigger_tool_change" => "Announces a change of the tool list",
        "test_trigger_resource_update" => {
            "Changes test://watched-resource and tells its subscribers"
        }
        "test_wait_for_cancel" => {
            "Reports progress 0 (with a progress token), then works until the request is \
             cancelled (at most 30s)"
        }
        CUSTOM_HEADER_TOOL => {
            "Echoes its arguments; region, priority and dry_run travel in Mcp-Param-* headers too"
        }
        _ => "Announces a change of the prompt list",
    }
}

/// The `tools/list` entries.
pub(super) fn tools() -> Vec<Value> {
    TOOL_NAMES
        .iter()
        .map(|&name| {
            let input_schema = if name == CUSTOM_HEADER_TOOL {
                json!({
                    "type": "object",
                    "properties": {
                        "region": {"type": "string", "x-mcp-header": "Region"},
                        "priority": {"type": "integer", "x-mcp-header": "Priority"},
                        "dry_run": {"type": "boolean", "x-mcp-header": "Dry-Run"},
                        "note": {"type": "string"},
                    },
                    "required": ["region"],
                })
            } else {
                json!({"type": "object", "properties": {}})
            };
            json!({"name": name, "description": describe(name), "inputSchema": input_schema})
        })
        .collect()
}

/// The `prompts/list` entry.
pub(super) fn prompt() -> Value {
    json!({
        "name": PROMPT_NAME, "title": "Prompt Needing Input",
        "description": "A prompt that asks the user for context (elicitation, input key user_context)",
    })
}

/// A server→client request whose 2026-07-28 input key is `key`.
async fn ask(
    cx: &RequestContext,
    key: &str,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let mut params = params;
    params["_meta"] = json!({meta::INPUT_KEY: key});
    cx.request(method, Some(params), CLIENT_REPLY_TIMEOUT).await
}

fn form(message: &str, field: &str, kind: &str) -> Value {
    json!({
        "mode": "form",
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": {field: {"type": kind}},
            "required": [field],
        },
    })
}

fn sample(prompt: &str, max_tokens: u64) -> Value {
    json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
        "maxTokens": max_tokens,
    })
}

fn content_field(answer: &Value, field: &str) -> String {
    match &answer["content"][field] {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

fn sampled(answer: &Value) -> String {
    super::sampled_text(answer)
        .unwrap_or("(no text content)")
        .to_string()
}

fn roots(answer: &Value) -> String {
    let uris: Vec<&str> = answer["roots"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["uri"].as_str()).collect())
        .unwrap_or_default();
    if uris.is_empty() {
        "(no roots)".into()
    } else {
        uris.join(", ")
    }
}

/// Counts one cancellation when dropped while armed.
struct StopCounter<'a>(Option<&'a std::sync::atomic::AtomicU64>);

impl Drop for StopCounter<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Runs one of [`TOOL_NAMES`].
pub(super) async fn call(
    fixture: &ConformanceFixture,
    cx: &RequestContext,
    name: &str,
    args: &serde_json::Map<String, Value>,
) -> Result<Value, RpcError> {
    let name_question = || form("What is your name?", "name", "string");
    let confirm = || form("Please confirm", "ok", "boolean");
    match name {
        CUSTOM_HEADER_TOOL => Ok(text_result(format!(
            "Custom header tool called with: {}",
            Value::Object(args.clone())
        ))),
        "test_input_required_result_elicitation" => {
            let a = ask(cx, "user_name", "elicitation/create", name_question()).await?;
            Ok(text_result(format!(
                "Hello, {}!",
                content_field(&a, "name")
            )))
        }
        "test_input_required_result_sampling" => {
            let prompt = sample("What is the capital of France?", 100);
            let a = ask(cx, "capital_question", "sampling/createMessage", prompt).await?;
            Ok(text_result(format!("LLM response: {}", sampled(&a))))
        }
        "test_input_required_result_list_roots" => {
            let a = ask(cx, "client_roots", "roots/list", json!({})).await?;
            Ok(text_result(format!("Client roots: {}", roots(&a))))
        }
        "test_input_required_result_request_state" => {
            let a = ask(cx, "confirm", "elicitation/create", confirm()).await?;
            Ok(text_result(format!(
                "state-ok: confirmation received (ok={})",
                content_field(&a, "ok")
            )))
        }
        "test_input_required_result_multiple_inputs" => {
            let (who, greeting, where_) = tokio::join!(
                ask(cx, "user_name", "elicitation/create", name_question()),
                ask(
                    cx,
                    "greeting",
                    "sampling/createMessage",
                    sample("Generate a greeting", 50)
                ),
                ask(cx, "client_roots", "roots/list", json!({})),
            );
            let (who, greeting, where_) = (who?, greeting?, where_?);
            Ok(text_result(format!(
                "name={}, greeting={}, roots={}",
                content_field(&who, "name"),
                sampled(&greeting),
                roots(&where_)
            )))
        }
        "test_input_required_result_multi_round" => {
            let step1 = form("Step 1: What is your name?", "name", "string");
            let a = ask(cx, "step1", "elicitation/create", step1).await?;
            let step2 = form("Step 2: What is your favorite color?", "color", "string");
            let b = ask(cx, "step2", "elicitation/create", step2).await?;
            Ok(text_result(format!(
                "{} likes {}",
                content_field(&a, "name"),
                content_field(&b, "color")
            )))
        }
        "test_input_required_result_tampered_state" => {
            let a = ask(cx, "confirm", "elicitation/create", confirm()).await?;
            Ok(text_result(format!(
                "confirmed (ok={})",
                content_field(&a, "ok")
            )))
        }
        "test_input_required_result_capabilities" => {
            // Asks both ways at once; a client that lacks one capability gets only the other
            // (mcplane, or the server core, refuses the request it cannot take).
            let (elicited, sampled_answer) = tokio::join!(
                ask(cx, "user_name", "elicitation/create", name_question()),
                ask(
                    cx,
                    "capital_question",
                    "sampling/createMessage",
                    sample("What is the capital of France?", 100)
                ),
            );
            match (elicited, sampled_answer) {
                (Err(e), Err(_)) => Err(e),
                (e, s) => Ok(text_result(format!(
                    "elicitation: {}; sampling: {}",
                    e.map_or_else(
                        |e| format!("unavailable ({})", e.message),
                        |a| { content_field(&a, "name") }
                    ),
                    s.map_or_else(|e| format!("unavailable ({})", e.message), |a| sampled(&a)),
                ))),
            }
        }
        "test_missing_capability" => {
            if !cx.session.client_supports("sampling") {
                return Err(RpcError::missing_capabilities(["sampling"]));
            }
            // Whatever refused the request (the client, or mcplane for a client that did not
            // declare sampling) is this call's error.
            let a = ask(
                cx,
                "sampling_required",
                "sampling/createMessage",
                sample("Say hi", 10),
            )
            .await?;
            Ok(text_result(format!("LLM response: {}", sampled(&a))))
        }
        "test_streaming_elicitation" => {
            let question = form("Please provide some input", "input", "string");
            let a = ask(cx, "user_input", "elicitation/create", question).await?;
            Ok(text_result(format!(
                "Received: {}",
                content_field(&a, "input")
            )))
        }
        "test_logging_tool" => {
            for step in ["started", "processing", "completed"] {
                fixture
                    .log(cx, LogLevel::Info, &format!("Logging tool {step}"))
                    .await;
                tokio::time::sleep(STEP_DELAY).await;
            }
            Ok(text_result("Logging tool completed"))
        }
        "test_trigger_tool_change" => {
            fixture.list_changed("notifications/tools/list_changed");
            Ok(text_result("Tool list change announced"))
        }
        "test_wait_for_cancel" => {
            if let Some(token) = cx.progress_token().cloned() {
                let progress = json!({"progressToken": token, "progress": 0, "message": "waiting"});
                cx.notify("notifications/progress", Some(progress)).await;
            }
            // Counted when the work stops before its end: cancelled, or dropped by the core.
            let mut stopped = StopCounter(Some(&fixture.cancellations));
            tokio::select! {
                _ = cx.cancelled().cancelled() => Err(RpcError::internal("cancelled")),
                _ = tokio::time::sleep(super::CLIENT_REPLY_TIMEOUT) => {
                    stopped.0 = None;
                    Ok(text_result("never cancelled"))
                }
            }
        }
        "test_trigger_resource_update" => {
            let told = fixture.update_resource(super::WATCHED_URI);
            Ok(text_result(format!(
                "Resource update sent to {told} subscriber(s)"
            )))
        }
        _ => {
            fixture.list_changed("notifications/prompts/list_changed");
            Ok(text_result("Prompt list change announced"))
        }
    }
}

/// `prompts/get` of [`PROMPT_NAME`].
pub(super) async fn get_prompt(cx: &RequestContext) -> Result<Value, RpcError> {
    let question = form("What context should the prompt use?", "context", "string");
    let a = ask(cx, "user_context", "elicitation/create", question).await?;
    Ok(json!({"messages": [{"role": "user", "content": {
        "type": "text",
        "text": format!("Prompt with context: {}", content_field(&a, "context")),
    }}]}))
}

/// A `subscriptions/listen` stream (for 2026-07-28 clients served directly).
pub(super) fn listen(fixture: &ConformanceFixture, filter: &Value) -> Listening {
    let (tx, rx) = mpsc::channel(16);
    let tools = filter["toolsListChanged"] == true;
    let prompts = filter["promptsListChanged"] == true;
    let uris: Vec<String> = filter["resourceSubscriptions"]
        .as_array()
        .map(|u| {
            u.iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Ok(mut l) = fixture.listeners.lock() {
        l.retain(|l| !l.tx.is_closed());
        l.push(Listener {
            tools,
            prompts,
            uris: uris.clone(),
            tx,
        });
    }
    let mut ack = serde_json::Map::new();
    if tools {
        ack.insert("toolsListChanged".into(), true.into());
    }
    if prompts {
        ack.insert("promptsListChanged".into(), true.into());
    }
    if filter.get("resourceSubscriptions").is_some() {
        ack.insert("resourceSubscriptions".into(), json!(uris));
    }
    Listening {
        acknowledged: Value::Object(ack),
        notifications: rx,
    }
}

/// Delivers `notifications/resources/updated` for `uri` to the listeners subscribed to it;
/// returns how many.
pub(super) fn notify_resource_listeners(listeners: &[Listener], uri: &str) -> usize {
    let note = json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}});
    listeners
        .iter()
        .filter(|l| l.uris.iter().any(|u| u == uri))
        .filter(|l| l.tx.try_send(note.clone()).is_ok())
        .count()
}

/// Delivers a list change to the listeners that asked for it.
pub(super) fn notify_listeners(listeners: &[Listener], method: &str) {
    let note = json!({"jsonrpc": "2.0", "method": method});
    for l in listeners {
        let wanted = if method.starts_with("notifications/tools/") {
            l.tools
        } else {
            l.prompts
        };
        if wanted {
            let _ = l.tx.try_send(note.clone());
        }
    }
}
