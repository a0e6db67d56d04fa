//! The built-in demo MCP server behind `mcplane demo-server`, used by the quick start.
//!
//! A small, dependency-free [`Service`] that exercises the features a user wants to see through
//! the gateway: tools (`echo`, `add` with structured output, `long_task` with progress and
//! cancellation, `current_time`), a resource (`demo://readme`), a resource template
//! (`demo://notes/{name}`), a prompt (`greeting`), argument completion and `logging/setLevel`.
//! Every input is validated; a bad argument is answered with a `-32602` error that names it.
//! Transports (stdio, Streamable HTTP) drive it through [`crate::server::Server`].

use crate::jsonrpc::{RESOURCE_NOT_FOUND, RpcError};
use crate::server::{RequestContext, Service, Session};
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `serverInfo.name` the demo server reports.
pub const SERVER_NAME: &str = "mcplane-demo";

/// URI of the demo's one static resource.
pub const README_URI: &str = "demo://readme";

/// The demo's resource template; any non-empty `name` without `/` can be read.
pub const NOTES_TEMPLATE: &str = "demo://notes/{name}";

const NOTES_PREFIX: &str = "demo://notes/";

/// Most steps `long_task` accepts.
pub const MAX_STEPS: u64 = 100;

/// Longest per-step delay `long_task` accepts, in milliseconds.
pub const MAX_DELAY_MS: u64 = 10_000;

/// Names offered when completing the `greeting` prompt's `name` argument.
const PERSON_NAMES: [&str; 10] = [
    "Ada",
    "Alan",
    "Alice",
    "Barbara",
    "Bob",
    "Edsger",
    "Grace",
    "Katherine",
    "Linus",
    "Margaret",
];

/// Names offered when completing the `demo://notes/{name}` template's `name` variable.
const NOTE_NAMES: [&str; 6] = [
    "architecture",
    "getting-started",
    "ideas",
    "meeting-notes",
    "roadmap",
    "todo",
];

/// Most values a `completion/complete` result may carry (spec limit).
const MAX_COMPLETIONS: usize = 100;

const README: &str = "# mcplane demo server\n\n\
This is the built-in MCP server that mcplane's quick start puts behind the gateway.\n\n\
- Tools: `echo`, `add`, `long_task` (progress + cancellation), `current_time`.\n\
- Resources: this readme and `demo://notes/{name}` for any name.\n\
- Prompts: `greeting` (argument `name`, with completion).\n\n\
Run it with `mcplane demo-server`.\n";

pub use crate::protocol::LogLevel;

/// The demo server. One value serves any number of sessions.
#[derive(Debug, Default)]
pub struct DemoServer {
    /// Minimum log level per session id (`logging/setLevel`); absent means [`LogLevel::Info`].
    log_levels: Mutex<HashMap<String, LogLevel>>,
}

impl DemoServer {
    /// A demo server.
    pub fn new() -> DemoServer {
        DemoServer::default()
    }

    fn log_level(&self, session: &Session) -> LogLevel {
        self.log_levels
            .lock()
            .ok()
            .and_then(|l| l.get(session.id()).copied())
            .unwrap_or(LogLevel::Info)
    }

    /// Sends `notifications/message` on the request's stream if the session wants this level.
    async fn log(&self, cx: &RequestContext, level: LogLevel, message: String) {
        if level >= self.log_level(&cx.session) {
            let params = json!({"level": level.as_str(), "logger": SERVER_NAME, "data": message});
            cx.notify("notifications/message", Some(params)).await;
        }
    }

    async fn call_tool(
        &self,
        cx: &RequestContext,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        let (name, args) = tool_call(params)?;
        match name.as_str() {
            "echo" => {
                let args = Args::new(&name, &args, &["text"])?;
                Ok(text_result(args.string("text")?))
            }
            "add" => {
                let args = Args::new(&name, &args, &["a", "b"])?;
                let sum = add(args.number("a")?, args.number("b")?)?;
                Ok(json!({
                    "content": [{"type": "text", "text": sum.to_string()}],
                    "structuredContent": {"sum": sum},
                }))
            }
            "long_task" => {
                let args = Args::new(&name, &args, &["steps", "delay_ms"])?;
                let steps = args.integer_or("steps", 5, 1, MAX_STEPS)?;
                let delay = args.integer_or("delay_ms", 100, 0, MAX_DELAY_MS)?;
                self.long_task(cx, steps, Duration::from_millis(delay))
                    .await
            }
            "current_time" => {
                Args::new(&name, &args, &[])?;
                Ok(text_result(rfc3339_utc(SystemTime::now())))
            }
            other => Err(RpcError::invalid_params(format!(
                "unknown tool {other:?}: this server has echo, add, long_task and current_time"
            ))),
        }
    }

    async fn long_task(
        &self,
        cx: &RequestContext,
        steps: u64,
        delay: Duration,
    ) -> Result<Value, RpcError> {
        self.log(
            cx,
            LogLevel::Debug,
            format!("long_task: starting {steps} steps"),
        )
        .await;
        for step in 1..=steps {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cx.cancelled().cancelled() => return stop_cancelled(step - 1, steps).await,
            }
            if let Some(token) = cx.progress_token() {
                let params = json!({
                    "progressToken": token,
                    "progress": step,
                    "total": steps,
                    "message": format!("step {step} of {steps}"),
                });
                cx.notify("notifications/progress", Some(params)).await;
            }
        }
        self.log(
            cx,
            LogLevel::Info,
            format!("long_task: finished {steps} steps"),
        )
        .await;
        Ok(text_result(format!("long_task completed {steps} steps")))
    }
}

/// Ends a cancelled `long_task`. MCP sends no response to a cancelled request: the server core
/// drops this future once it sees the cancellation, so the work parks here instead of returning a
/// value that could race the core's cancellation branch and reach the client.
async fn stop_cancelled(done: u64, steps: u64) -> Result<Value, RpcError> {
    tracing::debug!(done, steps, "long_task cancelled");
    std::future::pending().await
}

#[async_trait]
impl Service for DemoServer {
    async fn initialize(&self, _session: &Arc<Session>) -> Result<Value, RpcError> {
        Ok(json!({
            "capabilities": {
                "tools": {},
                "resources": {},
                "prompts": {},
                "completions": {},
                "logging": {},
            },
            "serverInfo": {
                "name": SERVER_NAME,
                "title": "mcplane demo server",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "instructions": "A demo server for trying mcplane: call `echo`, `add`, `long_task` or `current_time`, read demo://readme, or get the `greeting` prompt.",
        }))
    }

    async fn request(
        &self,
        cx: &RequestContext,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        match method {
            "tools/list" => Ok(json!({ "tools": tools() })),
            "tools/call" => self.call_tool(cx, params).await,
            "resources/list" => Ok(json!({
                "resources": [{
                    "uri": README_URI,
                    "name": "readme",
                    "title": "Demo server readme",
                    "description": "What this demo server offers and how to use it.",
                    "mimeType": "text/markdown",
                    "size": README.len(),
                }]
            })),
            "resources/templates/list" => Ok(json!({
                "resourceTemplates": [{
                    "uriTemplate": NOTES_TEMPLATE,
                    "name": "note",
                    "title": "Demo note",
                    "description": "A generated note; any name works.",
                    "mimeType": "text/markdown",
                }]
            })),
            "resources/read" => read_resource(params.as_ref()),
            "prompts/list" => Ok(json!({
                "prompts": [{
                    "name": "greeting",
                    "title": "Greeting",
                    "description": "Asks the model for a short, friendly greeting for someone.",
                    "arguments": [{
                        "name": "name",
                        "description": "Who to greet.",
                        "required": true,
                    }],
                }]
            })),
            "prompts/get" => get_prompt(params.as_ref()),
            "completion/complete" => complete(params.as_ref()),
            "logging/setLevel" => {
                let level = LogLevel::from_set_level_params(params.as_ref())?;
                if let Ok(mut l) = self.log_levels.lock() {
                    l.insert(cx.session.id().to_string(), level);
                }
                Ok(json!({}))
            }
            other => Err(RpcError::method_not_found(other)),
        }
    }

    fn session_closed(&self, session: &Session) {
        if let Ok(mut l) = self.log_levels.lock() {
            l.remove(session.id());
        }
    }
}

/// The `tools/list` entries.
fn tools() -> Value {
    json!([
        {
            "name": "echo",
            "title": "Echo",
            "description": "Returns the text it is given.",
            "inputSchema": {
                "type": "object",
                "properties": {"text": {"type": "string", "description": "Text to send back."}},
                "required": ["text"],
                "additionalProperties": false,
            },
            "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false},
        },
        {
            "name": "add",
            "title": "Add",
            "description": "Adds two numbers and returns the sum, also as structured content.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "a": {"type": "number", "description": "First addend."},
                    "b": {"type": "number", "description": "Second addend."},
                },
                "required": ["a", "b"],
                "additionalProperties": false,
            },
            "outputSchema": {
                "type": "object",
                "properties": {"sum": {"type": "number", "description": "a + b"}},
                "required": ["sum"],
            },
            "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false},
        },
        {
            "name": "long_task",
            "title": "Long task",
            "description": "Works through `steps` steps of `delay_ms` each, reporting progress when the request carries a progressToken. Can be cancelled.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "steps": {
                        "type": "integer", "minimum": 1, "maximum": MAX_STEPS, "default": 5,
                        "description": "How many steps to run.",
                    },
                    "delay_ms": {
                        "type": "integer", "minimum": 0, "maximum": MAX_DELAY_MS, "default": 100,
                        "description": "Milliseconds each step takes.",
                    },
                },
                "additionalProperties": false,
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false},
        },
        {
            "name": "current_time",
            "title": "Current time",
            "description": "Returns the current time in UTC as an RFC 3339 timestamp.",
            "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
            "annotations": {"readOnlyHint": true, "openWorldHint": false},
        },
    ])
}

fn text_result(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}]})
}

/// Splits `tools/call` params into the tool name and its arguments (absent arguments = `{}`).
fn tool_call(params: Option<Value>) -> Result<(String, Map<String, Value>), RpcError> {
    let Some(Value::Object(mut params)) = params else {
        return Err(RpcError::invalid_params(
            "tools/call needs params {\"name\": …, \"arguments\": {…}}",
        ));
    };
    let name = match params.remove("name") {
        Some(Value::String(n)) => n,
        _ => {
            return Err(RpcError::invalid_params(
                "tools/call needs the string parameter `name`",
            ));
        }
    };
    let args = match params.remove("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(a)) => a,
        Some(_) => {
            return Err(RpcError::invalid_params(format!(
                "tool {name:?}: `arguments` must be an object"
            )));
        }
    };
    Ok((name, args))
}

/// A tool's arguments with typed, error-naming accessors.
struct Args<'a> {
    tool: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    /// Wraps `map`, rejecting argument names not in `known`.
    fn new(tool: &'a str, map: &'a Map<String, Value>, known: &[&str]) -> Result<Self, RpcError> {
        if let Some(extra) = map.keys().find(|k| !known.contains(&k.as_str())) {
            let expected = if known.is_empty() {
                "it takes no arguments".to_string()
            } else {
                format!("it takes {}", known.join(", "))
            };
            return Err(RpcError::invalid_params(format!(
                "tool {tool:?}: unknown argument `{extra}` ({expected})"
            )));
        }
        Ok(Args { tool, map })
    }

    fn bad(&self, name: &str, want: &str) -> RpcError {
        let got = match self.map.get(name) {
            None => "it is missing".to_string(),
            Some(v) => format!("got {v}"),
        };
        RpcError::invalid_params(format!(
            "tool {:?}: argument `{name}` must be {want} ({got})",
            self.tool
        ))
        .with_data(json!({"argument": name}))
    }

    fn string(&self, name: &str) -> Result<&'a str, RpcError> {
        self.map
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| self.bad(name, "a string"))
    }

    fn number(&self, name: &str) -> Result<serde_json::Number, RpcError> {
        match self.map.get(name) {
            Some(Value::Number(n)) => Ok(n.clone()),
            _ => Err(self.bad(name, "a number")),
        }
    }

    fn integer_or(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, RpcError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| self.bad(name, &format!("an integer from {min} to {max}"))),
        }
    }
}

/// `a + b`, exact for integers, as a JSON number.
fn add(a: serde_json::Number, b: serde_json::Number) -> Result<Value, RpcError> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64())
        && let Some(s) = x.checked_add(y)
    {
        return Ok(s.into());
    }
    let (x, y) = (
        a.as_f64().unwrap_or(f64::NAN),
        b.as_f64().unwrap_or(f64::NAN),
    );
    serde_json::Number::from_f64(x + y)
        .map(Value::Number)
        .ok_or_else(|| {
            RpcError::invalid_params(format!("tool \"add\": {a} + {b} is not a finite number"))
        })
}

fn uri_param(method: &str, params: Option<&Value>) -> Result<String, RpcError> {
    params
        .and_then(|p| p.get("uri"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            RpcError::invalid_params(format!("{method} needs the string parameter `uri`"))
        })
}

fn read_resource(params: Option<&Value>) -> Result<Value, RpcError> {
    let uri = uri_param("resources/read", params)?;
    if uri == README_URI {
        return Ok(json!({
            "contents": [{"uri": uri, "mimeType": "text/markdown", "text": README}]
        }));
    }
    if let Some(name) = uri.strip_prefix(NOTES_PREFIX)
        && !name.is_empty()
        && !name.contains('/')
    {
        let text = format!(
            "# {name}\n\nThis note was generated by the mcplane demo server for the name `{name}`.\n"
        );
        return Ok(json!({
            "contents": [{"uri": uri, "mimeType": "text/markdown", "text": text}]
        }));
    }
    Err(RpcError::new(
        RESOURCE_NOT_FOUND,
        format!("resource not found: {uri} (try {README_URI} or {NOTES_PREFIX}<name>)"),
    )
    .with_data(json!({"uri": uri})))
}

fn get_prompt(params: Option<&Value>) -> Result<Value, RpcError> {
    let name = params
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("prompts/get needs the string parameter `name`"))?;
    if name != "greeting" {
        return Err(RpcError::invalid_params(format!(
            "unknown prompt {name:?}: this server has `greeting`"
        )));
    }
    let who = params
        .and_then(|p| p.get("arguments"))
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            RpcError::invalid_params(
                "prompt \"greeting\" needs the non-empty string argument `name`",
            )
            .with_data(json!({"argument": "name"}))
        })?;
    Ok(json!({
        "description": format!("A greeting for {who}"),
        "messages": [{
            "role": "user",
            "content": {
                "type": "text",
                "text": format!("Please write a short, friendly greeting for {who}."),
            },
        }],
    }))
}

fn complete(params: Option<&Value>) -> Result<Value, RpcError> {
    let params = params.ok_or_else(|| {
        RpcError::invalid_params("completion/complete needs params {\"ref\": …, \"argument\": …}")
    })?;
    let r = params
        .get("ref")
        .ok_or_else(|| RpcError::invalid_params("completion/complete needs `ref`"))?;
    let arg = params.get("argument");
    let arg_name = arg.and_then(|a| a.get("name")).and_then(Value::as_str);
    let value = arg.and_then(|a| a.get("value")).and_then(Value::as_str);
    let (Some(arg_name), Some(value)) = (arg_name, value) else {
        return Err(RpcError::invalid_params(
            "completion/complete needs `argument` with string `name` and `value`",
        ));
    };
    let candidates: &[&str] = match (
        r.get("type").and_then(Value::as_str),
        r.get("name")
            .or_else(|| r.get("uri"))
            .and_then(Value::as_str),
    ) {
        (Some("ref/prompt"), Some("greeting")) if arg_name == "name" => &PERSON_NAMES,
        (Some("ref/resource"), Some(NOTES_TEMPLATE)) if arg_name == "name" => &NOTE_NAMES,
        (Some("ref/prompt"), Some("greeting")) | (Some("ref/resource"), Some(NOTES_TEMPLATE)) => {
            return Err(RpcError::invalid_params(format!(
                "nothing to complete for argument `{arg_name}`: the only argument is `name`"
            )));
        }
        _ => {
            return Err(RpcError::invalid_params(format!(
                "unknown completion ref {r}: expected the prompt \"greeting\" or the resource template {NOTES_TEMPLATE}"
            )));
        }
    };
    Ok(completion_result(candidates, value))
}

/// A `completion/complete` result: the candidates starting with `prefix` (case-insensitive).
pub fn completion_result(candidates: &[&str], prefix: &str) -> Value {
    let prefix = prefix.to_lowercase();
    let matches: Vec<&str> = candidates
        .iter()
        .copied()
        .filter(|c| c.to_lowercase().starts_with(&prefix))
        .collect();
    let total = matches.len();
    let values: Vec<&str> = matches.into_iter().take(MAX_COMPLETIONS).collect();
    json!({"completion": {"values": values, "total": total, "hasMore": total > values.len()}})
}

/// `t` as an RFC 3339 UTC timestamp with second precision, e.g. `2023-11-14T22:13:20Z`.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian (year, month, day) of a count of days since 1970-01-01 (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{INVALID_PARAMS, METHOD_NOT_FOUND, Message};
    use crate::server::{Dispatch, Server};
    use tokio::sync::mpsc;

    async fn setup() -> (Arc<Server>, Arc<Session>) {
        let server = Server::new(Arc::new(DemoServer::new()));
        let s = server.new_session(None);
        let init = json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}});
        let out = collect(send(&server, &s, json!(0), "initialize", init).await).await;
        assert_eq!(out.len(), 1);
        (server, s)
    }

    async fn send(
        server: &Server,
        s: &Arc<Session>,
        id: Value,
        method: &str,
        params: Value,
    ) -> mpsc::Receiver<Value> {
        match server
            .dispatch(s, Message::request(id, method, Some(params)))
            .await
        {
            Dispatch::Reply(rx) => rx,
            Dispatch::Accepted => panic!("expected a reply"),
        }
    }

    async fn collect(mut rx: mpsc::Receiver<Value>) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(m) = rx.recv().await {
            out.push(m);
        }
        out
    }

    /// The final message of a request (its response).
    async fn rpc(server: &Server, s: &Arc<Session>, method: &str, params: Value) -> Value {
        let mut out = collect(send(server, s, json!("r"), method, params).await).await;
        out.pop().expect("a response")
    }

    async fn call(server: &Server, s: &Arc<Session>, tool: &str, args: Value) -> Value {
        rpc(
            server,
            s,
            "tools/call",
            json!({"name": tool, "arguments": args}),
        )
        .await
    }

    #[tokio::test]
    async fn initialize_advertises_what_is_implemented() {
        let server = Server::new(Arc::new(DemoServer::new()));
        let s = server.new_session(None);
        let out = collect(
            send(
                &server,
                &s,
                json!(1),
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {}}),
            )
            .await,
        )
        .await;
        let r = &out[0]["result"];
        assert_eq!(r["serverInfo"]["name"], "mcplane-demo");
        assert_eq!(r["protocolVersion"], "2025-06-18");
        let mut caps: Vec<&String> = r["capabilities"].as_object().unwrap().keys().collect();
        caps.sort();
        assert_eq!(
            caps,
            ["completions", "logging", "prompts", "resources", "tools"]
        );
    }

    #[tokio::test]
    async fn tools_list_has_schemas() {
        let (server, s) = setup().await;
        let r = rpc(&server, &s, "tools/list", json!({})).await;
        let tools = r["result"]["tools"].as_array().unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["echo", "add", "long_task", "current_time"]);
        for t in tools {
            assert_eq!(t["inputSchema"]["type"], "object", "{t}");
            assert!(t["description"].is_string());
        }
        assert_eq!(tools[1]["outputSchema"]["required"], json!(["sum"]));
    }

    #[tokio::test]
    async fn echo_and_add() {
        let (server, s) = setup().await;
        let r = call(&server, &s, "echo", json!({"text": "hello"})).await;
        assert_eq!(r["result"]["content"][0]["text"], "hello");
        let r = call(&server, &s, "add", json!({"a": 2, "b": 40})).await;
        assert_eq!(r["result"]["content"][0]["text"], "42");
        assert_eq!(r["result"]["structuredContent"], json!({"sum": 42}));
        let r = call(&server, &s, "add", json!({"a": 0.5, "b": -2})).await;
        assert_eq!(r["result"]["structuredContent"]["sum"], -1.5);
        let r = call(&server, &s, "add", json!({"a": i64::MAX, "b": 1})).await;
        assert!(r["result"]["structuredContent"]["sum"].as_f64().unwrap() > 9e18);
    }

    #[tokio::test]
    async fn bad_arguments_name_the_argument() {
        let (server, s) = setup().await;
        let r = call(&server, &s, "add", json!({"a": 1, "b": "2"})).await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        assert!(
            r["error"]["message"].as_str().unwrap().contains("`b`"),
            "{r}"
        );
        assert_eq!(r["error"]["data"]["argument"], "b");
        let r = call(&server, &s, "echo", json!({})).await;
        assert!(
            r["error"]["message"].as_str().unwrap().contains("`text`"),
            "{r}"
        );
        let r = call(&server, &s, "echo", json!({"text": "x", "txet": 1})).await;
        assert!(
            r["error"]["message"].as_str().unwrap().contains("`txet`"),
            "{r}"
        );
        let r = call(&server, &s, "long_task", json!({"steps": 0})).await;
        assert!(
            r["error"]["message"].as_str().unwrap().contains("`steps`"),
            "{r}"
        );
        let r = call(&server, &s, "long_task", json!({"delay_ms": -1})).await;
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`delay_ms`"),
            "{r}"
        );
        let r = rpc(
            &server,
            &s,
            "tools/call",
            json!({"name": "echo", "arguments": [1]}),
        )
        .await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        let r = call(&server, &s, "nope", json!({})).await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        assert!(r["error"]["message"].as_str().unwrap().contains("nope"));
        let r = rpc(&server, &s, "sampling/createMessage", json!({})).await;
        assert_eq!(r["error"]["code"], METHOD_NOT_FOUND);
    }

    #[tokio::test]
    async fn long_task_reports_progress_before_the_result() {
        let (server, s) = setup().await;
        let params = json!({"name": "long_task", "arguments": {"steps": 3, "delay_ms": 1}, "_meta": {"progressToken": "tok"}});
        let out = collect(send(&server, &s, json!(7), "tools/call", params).await).await;
        let progress: Vec<&Value> = out
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .collect();
        assert_eq!(progress.len(), 3);
        for (i, p) in progress.iter().enumerate() {
            assert_eq!(p["params"]["progressToken"], "tok");
            assert_eq!(p["params"]["progress"], i + 1);
            assert_eq!(p["params"]["total"], 3);
        }
        let last = out.last().unwrap();
        assert_eq!(last["id"], 7);
        assert_eq!(
            last["result"]["content"][0]["text"],
            "long_task completed 3 steps"
        );
        // Info-level completion log is sent by default, just before the response.
        assert_eq!(out[out.len() - 2]["method"], "notifications/message");

        // Without a token: no progress.
        let out = collect(
            send(
                &server,
                &s,
                json!(8),
                "tools/call",
                json!({"name": "long_task", "arguments": {"steps": 2, "delay_ms": 0}}),
            )
            .await,
        )
        .await;
        assert!(out.iter().all(|m| m["method"] != "notifications/progress"));
    }

    #[tokio::test]
    async fn logging_level_filters_messages() {
        let (server, s) = setup().await;
        let r = rpc(&server, &s, "logging/setLevel", json!({"level": "loud"})).await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        let r = rpc(&server, &s, "logging/setLevel", json!({"level": "debug"})).await;
        assert_eq!(r["result"], json!({}));
        let args = json!({"name": "long_task", "arguments": {"steps": 1, "delay_ms": 0}});
        let out = collect(send(&server, &s, json!(1), "tools/call", args.clone()).await).await;
        let logs = out
            .iter()
            .filter(|m| m["method"] == "notifications/message")
            .count();
        assert_eq!(logs, 2);
        rpc(&server, &s, "logging/setLevel", json!({"level": "error"})).await;
        let out = collect(send(&server, &s, json!(2), "tools/call", args).await).await;
        assert_eq!(out.len(), 1);
    }

    #[tokio::test]
    async fn long_task_can_be_cancelled() {
        let (server, s) = setup().await;
        let params = json!({"name": "long_task", "arguments": {"steps": 100, "delay_ms": 10000}});
        let mut rx = send(&server, &s, json!(9), "tools/call", params).await;
        let cancel =
            Message::notification("notifications/cancelled", Some(json!({"requestId": 9})));
        assert!(matches!(
            server.dispatch(&s, cancel).await,
            Dispatch::Accepted
        ));
        let rest = tokio::time::timeout(Duration::from_secs(5), async {
            let mut v = Vec::new();
            while let Some(m) = rx.recv().await {
                v.push(m);
            }
            v
        })
        .await
        .expect("the request ends promptly");
        assert!(rest.iter().all(|m| m.get("id").is_none()), "{rest:?}");
    }

    #[tokio::test]
    async fn current_time_is_rfc3339_utc() {
        let (server, s) = setup().await;
        let r = call(&server, &s, "current_time", json!({})).await;
        let t = r["result"]["content"][0]["text"].as_str().unwrap();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && &t[10..11] == "T", "{t}");
        assert!(t.as_bytes()[..4].iter().all(u8::is_ascii_digit));
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339_utc(t), "2023-11-14T22:13:20Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_utc(leap), "2000-02-29T00:00:00Z");
    }

    #[tokio::test]
    async fn resources_and_template() {
        let (server, s) = setup().await;
        let r = rpc(&server, &s, "resources/list", json!({})).await;
        assert_eq!(r["result"]["resources"][0]["uri"], README_URI);
        let r = rpc(&server, &s, "resources/templates/list", json!({})).await;
        assert_eq!(
            r["result"]["resourceTemplates"][0]["uriTemplate"],
            NOTES_TEMPLATE
        );
        let r = rpc(&server, &s, "resources/read", json!({"uri": README_URI})).await;
        assert_eq!(r["result"]["contents"][0]["mimeType"], "text/markdown");
        assert!(
            r["result"]["contents"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("# mcplane demo")
        );
        let r = rpc(
            &server,
            &s,
            "resources/read",
            json!({"uri": "demo://notes/shopping"}),
        )
        .await;
        assert_eq!(r["result"]["contents"][0]["uri"], "demo://notes/shopping");
        assert!(
            r["result"]["contents"][0]["text"]
                .as_str()
                .unwrap()
                .contains("shopping")
        );
        for bad in ["demo://notes/", "demo://notes/a/b", "demo://nothing"] {
            let r = rpc(&server, &s, "resources/read", json!({"uri": bad})).await;
            assert_eq!(r["error"]["code"], RESOURCE_NOT_FOUND, "{bad}");
            assert_eq!(r["error"]["data"]["uri"], bad);
        }
        let r = rpc(&server, &s, "resources/read", json!({})).await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
    }

    #[tokio::test]
    async fn greeting_prompt() {
        let (server, s) = setup().await;
        let r = rpc(&server, &s, "prompts/list", json!({})).await;
        assert_eq!(r["result"]["prompts"][0]["arguments"][0]["required"], true);
        let r = rpc(
            &server,
            &s,
            "prompts/get",
            json!({"name": "greeting", "arguments": {"name": "Grace"}}),
        )
        .await;
        let text = r["result"]["messages"][0]["content"]["text"]
            .as_str()
            .unwrap();
        assert!(text.contains("Grace"));
        let r = rpc(
            &server,
            &s,
            "prompts/get",
            json!({"name": "greeting", "arguments": {}}),
        )
        .await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        assert!(r["error"]["message"].as_str().unwrap().contains("`name`"));
        let r = rpc(&server, &s, "prompts/get", json!({"name": "farewell"})).await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
    }

    #[tokio::test]
    async fn completion_for_prompt_and_template() {
        let (server, s) = setup().await;
        let r = rpc(&server, &s, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "greeting"}, "argument": {"name": "name", "value": "a"}})).await;
        assert_eq!(
            r["result"]["completion"]["values"],
            json!(["Ada", "Alan", "Alice"])
        );
        assert_eq!(r["result"]["completion"]["total"], 3);
        assert_eq!(r["result"]["completion"]["hasMore"], false);
        let r = rpc(&server, &s, "completion/complete", json!({"ref": {"type": "ref/resource", "uri": NOTES_TEMPLATE}, "argument": {"name": "name", "value": "ro"}})).await;
        assert_eq!(r["result"]["completion"]["values"], json!(["roadmap"]));
        let r = rpc(&server, &s, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "greeting"}, "argument": {"name": "name", "value": "zz"}})).await;
        assert_eq!(r["result"]["completion"]["values"], json!([]));
        let r = rpc(&server, &s, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "other"}, "argument": {"name": "name", "value": ""}})).await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        let r = rpc(&server, &s, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "greeting"}, "argument": {"name": "style", "value": ""}})).await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
    }

    #[test]
    fn log_levels_order_and_parse() {
        assert!(LogLevel::Error > LogLevel::Warning);
        for l in LogLevel::ALL {
            assert_eq!(LogLevel::parse(l.as_str()), Some(l));
        }
        assert_eq!(LogLevel::parse("verbose"), None);
    }
}
