//! A fixture MCP server with everything the official MCP conformance suite's server scenarios
//! call (`@modelcontextprotocol/conformance`, server leg, `--requirements 2025-11-25`).
//!
//! The suite exercises a server by fixed names: tools such as `test_simple_text`,
//! `test_tool_with_progress` or `test_sampling`, resources such as `test://static-text`, the
//! template `test://template/{id}/data`, prompts such as `test_prompt_with_arguments`. The suite's
//! own fixture server is not published, so [`ConformanceFixture`] implements those names and
//! behaviours as a [`Service`]: results are computed from the request (arguments substituted,
//! sampling and elicitation answers relayed, progress and log notifications really sent on the
//! request's stream, subscriptions and log levels kept per session). Run the suite against any
//! transport serving it, directly or behind the gateway, to check a path end to end.
//!
//! What it cannot do on its own is transport work: DNS-rebinding protection, session deletion
//! (404 afterwards) and closing an SSE stream mid-call for `test_reconnection` belong to the
//! transport serving it.
//!
//! The `--requirements 2026-07-28` scenarios' names ([`stateless`]) are here too, implemented
//! the session-era way (server→client requests that carry the input key the scenarios expect),
//! so that mcplane in front of this fixture has to bridge them into `input_required` results.

pub mod stateless;

use crate::http::HttpFixture;
use async_trait::async_trait;
use base64::Engine as _;
use mcplane_mcp::demo::{LogLevel, completion_result};
use mcplane_mcp::jsonrpc::{RESOURCE_NOT_FOUND, RpcError};
use mcplane_mcp::server::{Listening, RequestContext, Service, Session};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The `serverInfo.name` the fixture reports.
pub const SERVER_NAME: &str = "mcplane-conformance-fixture";

/// How long a tool waits for the client to answer `sampling/createMessage` or `elicitation/create`.
pub const CLIENT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between the notifications of the logging and progress tools (the suite asks for ~50 ms).
const STEP_DELAY: Duration = Duration::from_millis(50);

/// A 1×1 red PNG, base64.
pub const RED_PIXEL_PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// Text resource read by the `resources-read-text` scenario.
pub const STATIC_TEXT_URI: &str = "test://static-text";
/// Binary resource read by the `resources-read-binary` scenario.
pub const STATIC_BINARY_URI: &str = "test://static-binary";
/// Resource the subscription scenarios subscribe to; see [`ConformanceFixture::update_resource`].
pub const WATCHED_URI: &str = "test://watched-resource";
/// Template read by the `resources-templates-read` scenario.
pub const DATA_TEMPLATE: &str = "test://template/{id}/data";

const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";
const STATIC_TEXT: &str = "This is the content of the static text resource.";
const LOGGER: &str = "conformance-fixture";

/// Values offered when completing `test_prompt_with_arguments`' `arg1`/`arg2`.
const ARG_COMPLETIONS: [&str; 8] = [
    "paris", "park", "party", "test", "testing", "tested", "value", "values",
];
/// Values offered when completing the template's `id`.
const ID_COMPLETIONS: [&str; 6] = ["1", "2", "3", "42", "123", "456"];

/// The tool that carries a JSON Schema 2020-12 input schema (`json-schema-2020-12` scenario).
pub const JSON_SCHEMA_TOOL: &str = "json_schema_2020_12_tool";

/// Every tool the fixture lists, in `tools/list` order.
pub const TOOL_NAMES: [&str; 14] = [
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_reconnection",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    JSON_SCHEMA_TOOL,
];

/// Every prompt the fixture lists.
pub const PROMPT_NAMES: [&str; 4] = [
    "test_simple_prompt",
    "test_prompt_with_arguments",
    "test_prompt_with_embedded_resource",
    "test_prompt_with_image",
];

/// What the fixture remembers about one session.
#[derive(Debug, Default)]
struct SessionState {
    session: Weak<Session>,
    /// Minimum level for `notifications/message`; `None` (never set) sends everything.
    log_level: Option<LogLevel>,
    subscriptions: BTreeSet<String>,
}

/// The conformance fixture server. One value serves any number of sessions.
#[derive(Debug, Default)]
pub struct ConformanceFixture {
    sessions: Mutex<HashMap<String, SessionState>>,
    /// Bumped by [`ConformanceFixture::update_resource`]; shown in the watched resource's text.
    watched_version: AtomicU64,
    /// `subscriptions/listen` streams of 2026-07-28 clients served directly.
    listeners: Mutex<Vec<stateless::Listener>>,
    /// Refuse `initialize`: serve 2026-07-28 clients only (see [`ConformanceFixture::modern_only`]).
    modern_only: bool,
    /// Calls of `test_wait_for_cancel` that saw their request cancelled.
    cancellations: AtomicU64,
}

impl ConformanceFixture {
    /// A fixture.
    pub fn new() -> ConformanceFixture {
        ConformanceFixture::default()
    }

    /// A fixture that speaks only the stateless 2026-07-28 era: `initialize` is refused with an
    /// error naming the version it supports (what a modern-only server should do, spec:
    /// *Versioning*), `server/discover` and everything else work.
    pub fn modern_only() -> ConformanceFixture {
        ConformanceFixture {
            modern_only: true,
            ..ConformanceFixture::default()
        }
    }

    /// How many `test_wait_for_cancel` calls were cancelled by their client.
    pub fn cancellations(&self) -> u64 {
        self.cancellations.load(Ordering::Relaxed)
    }

    /// What `initialize` and `server/discover` report.
    fn identity() -> Value {
        json!({
            "capabilities": {
                "tools": {"listChanged": true},
                "resources": {"subscribe": true},
                "prompts": {"listChanged": true},
                "logging": {},
                "completions": {},
            },
            "serverInfo": {
                "name": SERVER_NAME,
                "title": "mcplane conformance fixture",
                "version": env!("CARGO_PKG_VERSION"),
            },
        })
    }

    /// The URIs `session_id` is subscribed to, sorted.
    pub fn subscriptions(&self, session_id: &str) -> Vec<String> {
        self.sessions
            .lock()
            .ok()
            .and_then(|s| {
                s.get(session_id)
                    .map(|st| st.subscriptions.iter().cloned().collect())
            })
            .unwrap_or_default()
    }

    /// Marks `uri` as changed: the watched resource gets new content, and every session
    /// subscribed to `uri` gets `notifications/resources/updated` on its standalone stream.
    /// Returns how many sessions were notified.
    pub fn update_resource(&self, uri: &str) -> usize {
        if uri == WATCHED_URI {
            self.watched_version.fetch_add(1, Ordering::Relaxed);
        }
        let targets: Vec<Arc<Session>> = self
            .sessions
            .lock()
            .map(|s| {
                s.values()
                    .filter(|st| st.subscriptions.contains(uri))
                    .filter_map(|st| st.session.upgrade())
                    .collect()
            })
            .unwrap_or_default();
        for s in &targets {
            s.notify("notifications/resources/updated", Some(json!({"uri": uri})));
        }
        let listening = match self.listeners.lock() {
            Ok(l) => stateless::notify_resource_listeners(&l, uri),
            Err(_) => 0,
        };
        targets.len() + listening
    }

    /// Announces a list change (`notifications/{tools,prompts}/list_changed`) to every session
    /// and to the listeners that asked for it.
    pub fn list_changed(&self, method: &str) {
        let sessions: Vec<Arc<Session>> = self
            .sessions
            .lock()
            .map(|s| s.values().filter_map(|st| st.session.upgrade()).collect())
            .unwrap_or_default();
        for s in sessions {
            s.notify(method, None);
        }
        if let Ok(l) = self.listeners.lock() {
            stateless::notify_listeners(&l, method);
        }
    }

    fn with_state<R>(&self, session: &Arc<Session>, f: impl FnOnce(&mut SessionState) -> R) -> R {
        let mut guard = match self.sessions.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let st = guard
            .entry(session.id().to_string())
            .or_insert_with(|| SessionState {
                session: Arc::downgrade(session),
                ..SessionState::default()
            });
        f(st)
    }

    /// Sends `notifications/message` on the request's stream unless the session filtered it out.
    async fn log(&self, cx: &RequestContext, level: LogLevel, message: &str) {
        let min = self.with_state(&cx.session, |st| st.log_level);
        if min.is_none_or(|min| level >= min) {
            let params = json!({"level": level.as_str(), "logger": LOGGER, "data": message});
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
            "test_simple_text" => Ok(text_result("This is a simple text response for testing.")),
            "test_image_content" => Ok(json!({"content": [image()]})),
            "test_audio_content" => Ok(json!({"content": [{
                "type": "audio",
                "data": base64::engine::general_purpose::STANDARD.encode(silent_wav(8000, 80)),
                "mimeType": "audio/wav",
            }]})),
            "test_embedded_resource" => Ok(json!({"content": [{
                "type": "resource",
                "resource": {
                    "uri": "test://embedded-resource",
                    "mimeType": "text/plain",
                    "text": "This is an embedded resource content.",
                },
            }]})),
            "test_multiple_content_types" => Ok(json!({"content": [
                {"type": "text", "text": "Multiple content types test:"},
                image(),
                {"type": "resource", "resource": {
                    "uri": "test://mixed-content-resource",
                    "mimeType": "application/json",
                    "text": json!({"test": "data", "value": 123}).to_string(),
                }},
            ]})),
            "test_tool_with_logging" => {
                self.log(cx, LogLevel::Info, "Tool execution started").await;
                tokio::time::sleep(STEP_DELAY).await;
                self.log(cx, LogLevel::Info, "Tool processing data").await;
                tokio::time::sleep(STEP_DELAY).await;
                self.log(cx, LogLevel::Info, "Tool execution completed")
                    .await;
                Ok(text_result("Tool with logging executed successfully"))
            }
            "test_tool_with_progress" => {
                let token = cx.progress_token().cloned();
                for (i, progress) in [0, 50, 100].into_iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(STEP_DELAY).await;
                    }
                    if let Some(token) = &token {
                        let params = json!({
                            "progressToken": token,
                            "progress": progress,
                            "total": 100,
                            "message": format!("Completed step {progress} of 100"),
                        });
                        cx.notify("notifications/progress", Some(params)).await;
                    }
                }
                Ok(text_result(match token {
                    Some(t) => format!("Progress reported with token {t}"),
                    None => "Done (no progressToken was given, so no progress was reported)".into(),
                }))
            }
            "test_error_handling" => Ok(json!({
                "isError": true,
                "content": [{"type": "text", "text": "This tool intentionally returns an error for testing"}],
            })),
            "test_reconnection" => {
                // Closing the SSE stream mid-call is the transport's job; the tool itself just
                // takes long enough for a client to reconnect.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(text_result(
                    "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.",
                ))
            }
            "test_sampling" => {
                let prompt = string_arg(&name, &args, "prompt")?;
                sampling(cx, prompt).await
            }
            "test_elicitation" => {
                let message = string_arg(&name, &args, "message")?;
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "username": {"type": "string", "description": "User's response"},
                        "email": {"type": "string", "description": "User's email address"},
                    },
                    "required": ["username", "email"],
                });
                elicit(cx, message, schema, "User response").await
            }
            "test_elicitation_sep1034_defaults" => {
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "User name", "default": "John Doe"},
                        "age": {"type": "integer", "description": "User age", "default": 30},
                        "score": {"type": "number", "description": "User score", "default": 95.5},
                        "status": {
                            "type": "string", "description": "User status",
                            "enum": ["active", "inactive", "pending"], "default": "active",
                        },
                        "verified": {"type": "boolean", "description": "Verification status", "default": true},
                    },
                    "required": [],
                });
                let message = "Please review and update the form fields with defaults";
                elicit(cx, message, schema, "Elicitation completed").await
            }
            "test_elicitation_sep1330_enums" => {
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "untitledSingle": {
                            "type": "string", "description": "Select one option",
                            "enum": ["option1", "option2", "option3"],
                        },
                        "titledSingle": {
                            "type": "string", "description": "Select one option with titles",
                            "oneOf": [
                                {"const": "value1", "title": "First Option"},
                                {"const": "value2", "title": "Second Option"},
                                {"const": "value3", "title": "Third Option"},
                            ],
                        },
                        "legacyEnum": {
                            "type": "string", "description": "Select one option (legacy)",
                            "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"],
                        },
                        "untitledMulti": {
                            "type": "array", "description": "Select multiple options",
                            "minItems": 1, "maxItems": 3,
                            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                        },
                        "titledMulti": {
                            "type": "array", "description": "Select multiple options with titles",
                            "minItems": 1, "maxItems": 3,
                            "items": {"anyOf": [
                                {"const": "value1", "title": "First Choice"},
                                {"const": "value2", "title": "Second Choice"},
                                {"const": "value3", "title": "Third Choice"},
                            ]},
                        },
                    },
                    "required": [],
                });
                let message = "Please select options from the enum fields";
                elicit(cx, message, schema, "Elicitation completed").await
            }
            JSON_SCHEMA_TOOL => {
                check_contact_args(&args)?;
                Ok(text_result(format!(
                    "JSON Schema 2020-12 tool called with: {}",
                    Value::Object(args)
                )))
            }
            other if stateless::TOOL_NAMES.contains(&other) => {
                stateless::call(self, cx, other, &args).await
            }
            other => Err(RpcError::invalid_params(format!(
                "unknown tool {other:?}: this fixture has {}, {}",
                TOOL_NAMES.join(", "),
                stateless::TOOL_NAMES.join(", ")
            ))),
        }
    }

    fn read_resource(&self, params: Option<&Value>) -> Result<Value, RpcError> {
        let uri = uri_param("resources/read", params)?;
        let content = match uri.as_str() {
            STATIC_TEXT_URI => json!({"uri": uri, "mimeType": "text/plain", "text": STATIC_TEXT}),
            STATIC_BINARY_URI => {
                json!({"uri": uri, "mimeType": "image/png", "blob": RED_PIXEL_PNG_BASE64})
            }
            WATCHED_URI => json!({
                "uri": uri,
                "mimeType": "text/plain",
                "text": format!(
                    "Watched resource content (version {})",
                    self.watched_version.load(Ordering::Relaxed)
                ),
            }),
            _ => match template_id(&uri) {
                Some(id) => json!({
                    "uri": uri,
                    "mimeType": "application/json",
                    "text": json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")}).to_string(),
                }),
                None => return Err(not_found(&uri)),
            },
        };
        Ok(json!({"contents": [content]}))
    }

    fn subscription(
        &self,
        cx: &RequestContext,
        params: Option<&Value>,
        subscribe: bool,
    ) -> Result<Value, RpcError> {
        let method = if subscribe {
            "resources/subscribe"
        } else {
            "resources/unsubscribe"
        };
        let uri = uri_param(method, params)?;
        if subscribe && !resource_exists(&uri) {
            return Err(not_found(&uri));
        }
        self.with_state(&cx.session, |st| {
            if subscribe {
                st.subscriptions.insert(uri);
            } else {
                st.subscriptions.remove(&uri);
            }
        });
        Ok(json!({}))
    }
}

#[async_trait]
impl Service for ConformanceFixture {
    async fn initialize(&self, session: &Arc<Session>) -> Result<Value, RpcError> {
        if self.modern_only {
            return Err(RpcError::invalid_request(format!(
                "this server speaks only MCP {} (stateless, per-request _meta); initialize is not \
                 supported",
                mcplane_mcp::protocol::MODERN
            ))
            .with_data(json!({"supported": [mcplane_mcp::protocol::MODERN]})));
        }
        self.with_state(session, |_| ());
        Ok(Self::identity())
    }

    async fn discover(&self, _session: &Arc<Session>) -> Result<Value, RpcError> {
        Ok(Self::identity())
    }

    async fn request(
        &self,
        cx: &RequestContext,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, RpcError> {
        match method {
            "tools/list" => Ok(json!({"tools": tools()})),
            "tools/call" => self.call_tool(cx, params).await,
            "resources/list" => Ok(json!({"resources": [
                {
                    "uri": STATIC_TEXT_URI, "name": "static-text", "title": "Static Text Resource",
                    "description": "A static text resource for testing", "mimeType": "text/plain",
                },
                {
                    "uri": STATIC_BINARY_URI, "name": "static-binary", "title": "Static Binary Resource",
                    "description": "A static binary resource (image) for testing", "mimeType": "image/png",
                },
                {
                    "uri": WATCHED_URI, "name": "watched-resource", "title": "Watched Resource",
                    "description": "A resource whose updates are sent to subscribers", "mimeType": "text/plain",
                },
            ]})),
            "resources/templates/list" => Ok(json!({"resourceTemplates": [{
                "uriTemplate": DATA_TEMPLATE, "name": "template", "title": "Resource Template",
                "description": "A resource template with parameter substitution",
                "mimeType": "application/json",
            }]})),
            "resources/read" => self.read_resource(params.as_ref()),
            "resources/subscribe" => self.subscription(cx, params.as_ref(), true),
            "resources/unsubscribe" => self.subscription(cx, params.as_ref(), false),
            "prompts/list" => Ok(json!({"prompts": [
                {
                    "name": "test_simple_prompt", "title": "Simple Test Prompt",
                    "description": "A simple prompt without arguments",
                },
                {
                    "name": "test_prompt_with_arguments", "title": "Prompt With Arguments",
                    "description": "A prompt with required arguments",
                    "arguments": [
                        {"name": "arg1", "description": "First test argument", "required": true},
                        {"name": "arg2", "description": "Second test argument", "required": true},
                    ],
                },
                {
                    "name": "test_prompt_with_embedded_resource", "title": "Prompt With Embedded Resource",
                    "description": "A prompt that includes an embedded resource",
                    "arguments": [
                        {"name": "resourceUri", "description": "URI of the resource to embed", "required": true},
                    ],
                },
                {
                    "name": "test_prompt_with_image", "title": "Prompt With Image",
                    "description": "A prompt that includes image content",
                },
                stateless::prompt(),
            ]})),
            "prompts/get"
                if params.as_ref().and_then(|p| p.get("name"))
                    == Some(&json!(stateless::PROMPT_NAME)) =>
            {
                stateless::get_prompt(cx).await
            }
            "prompts/get" => get_prompt(params.as_ref()),
            "completion/complete" => complete(params.as_ref()),
            "logging/setLevel" => {
                let level = LogLevel::from_set_level_params(params.as_ref())?;
                self.with_state(&cx.session, |st| st.log_level = Some(level));
                Ok(json!({}))
            }
            other => Err(RpcError::method_not_found(other)),
        }
    }

    async fn listen(&self, _cx: &RequestContext, filter: &Value) -> Result<Listening, RpcError> {
        Ok(stateless::listen(self, filter))
    }

    fn session_closed(&self, session: &Session) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(session.id());
        }
    }
}

/// The `tools/list` entries.
fn tools() -> Vec<Value> {
    let no_args = json!({"type": "object", "properties": {}});
    let described = |name: &str| -> &'static str {
        match name {
            "test_simple_text" => "Tests simple text content response",
            "test_image_content" => "Tests image content response",
            "test_audio_content" => "Tests audio content response",
            "test_embedded_resource" => "Tests embedded resource content response",
            "test_multiple_content_types" => {
                "Tests response with multiple content types (text, image, resource)"
            }
            "test_tool_with_logging" => "Tests tool that emits log messages during execution",
            "test_tool_with_progress" => "Tests tool that reports progress notifications",
            "test_error_handling" => "Tests error response handling",
            "test_reconnection" => {
                "Tests SSE stream disconnection and client reconnection (SEP-1699)"
            }
            "test_sampling" => "Tests server-initiated sampling (LLM completion request)",
            "test_elicitation" => "Tests server-initiated elicitation (user input request)",
            "test_elicitation_sep1034_defaults" => {
                "Tests elicitation with default values per SEP-1034"
            }
            "test_elicitation_sep1330_enums" => {
                "Tests elicitation with enum schema improvements per SEP-1330"
            }
            _ => {
                "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613, SEP-2106)"
            }
        }
    };
    let session_era = TOOL_NAMES.iter().map(|&name| {
            let input_schema = match name {
                "test_sampling" => json!({
                    "type": "object",
                    "properties": {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}},
                    "required": ["prompt"],
                }),
                "test_elicitation" => json!({
                    "type": "object",
                    "properties": {"message": {"type": "string", "description": "The message to show the user"}},
                    "required": ["message"],
                }),
                JSON_SCHEMA_TOOL => json_schema_2020_12(),
                _ => no_args.clone(),
            };
            json!({"name": name, "description": described(name), "inputSchema": input_schema})
        });
    session_era.chain(stateless::tools()).collect()
}

/// The input schema of [`JSON_SCHEMA_TOOL`]: `$schema`, `$defs` with an `$anchor`, `$ref`,
/// `allOf`/`anyOf`, `if`/`then`/`else` and `additionalProperties: false`.
fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
            },
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"},
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": false,
    })
}

/// Validates [`JSON_SCHEMA_TOOL`] arguments against [`json_schema_2020_12`]'s rules.
fn check_contact_args(args: &Map<String, Value>) -> Result<(), RpcError> {
    let bad = |msg: String| {
        Err(RpcError::invalid_params(format!(
            "tool {JSON_SCHEMA_TOOL:?}: {msg}"
        )))
    };
    for (k, v) in args {
        let ok = match k.as_str() {
            "name" | "phone" | "email" => v.is_string(),
            "contactMethod" => matches!(v.as_str(), Some("phone" | "email")),
            "address" => v.as_object().is_some_and(|a| {
                a.iter()
                    .all(|(k, v)| !matches!(k.as_str(), "street" | "city") || v.is_string())
            }),
            _ => {
                return bad(format!(
                    "unknown argument `{k}` (additionalProperties is false)"
                ));
            }
        };
        if !ok {
            return bad(format!("argument `{k}` has the wrong type or value ({v})"));
        }
    }
    let needed = if args.get("contactMethod").and_then(Value::as_str) == Some("phone") {
        "phone"
    } else {
        "email"
    };
    if !args.contains_key(needed) {
        return bad(format!(
            "argument `{needed}` is required for this contactMethod"
        ));
    }
    Ok(())
}

fn image() -> Value {
    json!({"type": "image", "data": RED_PIXEL_PNG_BASE64, "mimeType": "image/png"})
}

fn text_result(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}]})
}

fn tool_error(text: impl Into<String>) -> Value {
    json!({"isError": true, "content": [{"type": "text", "text": text.into()}]})
}

/// A PCM WAV (16-bit mono) of `samples` samples of silence.
pub fn silent_wav(sample_rate: u32, samples: u32) -> Vec<u8> {
    let data_len = samples * 2;
    let mut w = Vec::with_capacity(44 + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&sample_rate.to_le_bytes());
    w.extend_from_slice(&(sample_rate * 2).to_le_bytes()); // byte rate
    w.extend_from_slice(&2u16.to_le_bytes()); // block align
    w.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    w.resize(44 + data_len as usize, 0);
    w
}

/// Asks the client to sample `prompt` and reports the model's answer.
async fn sampling(cx: &RequestContext, prompt: &str) -> Result<Value, RpcError> {
    if !cx.session.client_supports("sampling") {
        return Ok(tool_error(
            "test_sampling needs a client that declares the `sampling` capability",
        ));
    }
    let params = json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
        "maxTokens": 100,
    });
    match cx
        .request("sampling/createMessage", Some(params), CLIENT_REPLY_TIMEOUT)
        .await
    {
        Ok(reply) => Ok(text_result(format!(
            "LLM response: {}",
            sampled_text(&reply).unwrap_or("(no text content)")
        ))),
        Err(e) => Ok(tool_error(format!("sampling/createMessage failed: {e}"))),
    }
}

/// The text of a `sampling/createMessage` result (`content` is one block or, since 2025-11-25,
/// an array of blocks).
fn sampled_text(reply: &Value) -> Option<&str> {
    let content = reply.get("content")?;
    let blocks = match content {
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        one => vec![one],
    };
    blocks
        .into_iter()
        .find(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .and_then(|b| b.get("text"))
        .and_then(Value::as_str)
}

/// Asks the client for input with `schema` and reports what it answered.
async fn elicit(
    cx: &RequestContext,
    message: &str,
    schema: Value,
    label: &str,
) -> Result<Value, RpcError> {
    if !cx.session.client_supports("elicitation") {
        return Ok(tool_error(
            "this tool needs a client that declares the `elicitation` capability",
        ));
    }
    let mut params = json!({"message": message, "requestedSchema": schema});
    // `mode` exists from 2025-11-25 on; older clients would not expect it.
    if cx.session.protocol_version() >= "2025-11-25" {
        params["mode"] = json!("form");
    }
    match cx
        .request("elicitation/create", Some(params), CLIENT_REPLY_TIMEOUT)
        .await
    {
        Ok(reply) => {
            let action = reply
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let content = reply.get("content").cloned().unwrap_or_else(|| json!({}));
            Ok(text_result(format!(
                "{label}: action={action}, content={content}"
            )))
        }
        Err(e) => Ok(tool_error(format!("elicitation/create failed: {e}"))),
    }
}

/// Splits `tools/call` params into the tool name and its arguments (absent arguments = `{}`).
fn tool_call(params: Option<Value>) -> Result<(String, Map<String, Value>), RpcError> {
    let Some(Value::Object(mut params)) = params else {
        return Err(RpcError::invalid_params(
            "tools/call needs params with `name`",
        ));
    };
    let Some(Value::String(name)) = params.remove("name") else {
        return Err(RpcError::invalid_params(
            "tools/call needs the string parameter `name`",
        ));
    };
    match params.remove("arguments") {
        None | Some(Value::Null) => Ok((name, Map::new())),
        Some(Value::Object(a)) => Ok((name, a)),
        Some(_) => Err(RpcError::invalid_params(format!(
            "tool {name:?}: `arguments` must be an object"
        ))),
    }
}

fn string_arg<'a>(
    tool: &str,
    args: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, RpcError> {
    args.get(name).and_then(Value::as_str).ok_or_else(|| {
        RpcError::invalid_params(format!("tool {tool:?} needs the string argument `{name}`"))
            .with_data(json!({"argument": name}))
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

fn not_found(uri: &str) -> RpcError {
    RpcError::new(RESOURCE_NOT_FOUND, format!("resource not found: {uri}"))
        .with_data(json!({"uri": uri}))
}

/// The `{id}` of a URI matching [`DATA_TEMPLATE`].
fn template_id(uri: &str) -> Option<&str> {
    uri.strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

fn resource_exists(uri: &str) -> bool {
    matches!(uri, STATIC_TEXT_URI | STATIC_BINARY_URI | WATCHED_URI) || template_id(uri).is_some()
}

fn get_prompt(params: Option<&Value>) -> Result<Value, RpcError> {
    let name = params
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("prompts/get needs the string parameter `name`"))?;
    let arg = |key: &str| -> Result<&str, RpcError> {
        params
            .and_then(|p| p.get("arguments"))
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                RpcError::invalid_params(format!(
                    "prompt {name:?} needs the string argument `{key}`"
                ))
                .with_data(json!({"argument": key}))
            })
    };
    let user = |content: Value| json!({"role": "user", "content": content});
    let messages = match name {
        "test_simple_prompt" => vec![user(
            json!({"type": "text", "text": "This is a simple prompt for testing."}),
        )],
        "test_prompt_with_arguments" => {
            let (a1, a2) = (arg("arg1")?, arg("arg2")?);
            vec![user(json!({
                "type": "text",
                "text": format!("Prompt with arguments: arg1='{a1}', arg2='{a2}'"),
            }))]
        }
        "test_prompt_with_embedded_resource" => {
            let uri = arg("resourceUri")?;
            vec![
                user(json!({"type": "resource", "resource": {
                    "uri": uri,
                    "mimeType": "text/plain",
                    "text": "Embedded resource content for testing.",
                }})),
                user(
                    json!({"type": "text", "text": "Please process the embedded resource above."}),
                ),
            ]
        }
        "test_prompt_with_image" => vec![
            user(image()),
            user(json!({"type": "text", "text": "Please analyze the image above."})),
        ],
        other => {
            return Err(RpcError::invalid_params(format!(
                "unknown prompt {other:?}: this fixture has {}",
                PROMPT_NAMES.join(", ")
            )));
        }
    };
    Ok(json!({"messages": messages}))
}

fn complete(params: Option<&Value>) -> Result<Value, RpcError> {
    let r = params.and_then(|p| p.get("ref"));
    let arg = params.and_then(|p| p.get("argument"));
    let arg_name = arg.and_then(|a| a.get("name")).and_then(Value::as_str);
    let value = arg.and_then(|a| a.get("value")).and_then(Value::as_str);
    let (Some(r), Some(arg_name), Some(value)) = (r, arg_name, value) else {
        return Err(RpcError::invalid_params(
            "completion/complete needs `ref` and `argument` with string `name` and `value`",
        ));
    };
    let target = r
        .get("name")
        .or_else(|| r.get("uri"))
        .and_then(Value::as_str);
    let candidates: &[&str] = match (r.get("type").and_then(Value::as_str), target, arg_name) {
        (Some("ref/prompt"), Some("test_prompt_with_arguments"), "arg1" | "arg2") => {
            &ARG_COMPLETIONS
        }
        (Some("ref/prompt"), Some(p), _) if PROMPT_NAMES.contains(&p) => &[],
        (Some("ref/resource"), Some(DATA_TEMPLATE), "id") => &ID_COMPLETIONS,
        (Some("ref/resource"), Some(DATA_TEMPLATE), _) => &[],
        _ => {
            return Err(RpcError::invalid_params(format!(
                "unknown completion ref {r}: expected a prompt of this fixture or {DATA_TEMPLATE}"
            )));
        }
    };
    if candidates.is_empty() {
        return Err(RpcError::invalid_params(format!(
            "{} has no argument `{arg_name}` to complete",
            target.unwrap_or_default()
        )));
    }
    Ok(completion_result(candidates, value))
}

/// Serves a fresh [`ConformanceFixture`] over HTTP on `addr` (port 0 picks a free port); run the
/// suite with `conformance server --url <handle.url()>`. The fixture is returned too, e.g. to
/// call [`ConformanceFixture::update_resource`].
pub async fn serve_conformance_fixture(
    addr: SocketAddr,
) -> std::io::Result<(HttpFixture, Arc<ConformanceFixture>)> {
    serve_fixture(ConformanceFixture::new(), addr).await
}

/// Serves `fixture` (e.g. [`ConformanceFixture::modern_only`]) over HTTP on `addr`.
pub async fn serve_fixture(
    fixture: ConformanceFixture,
    addr: SocketAddr,
) -> std::io::Result<(HttpFixture, Arc<ConformanceFixture>)> {
    let fixture = Arc::new(fixture);
    let http = crate::http::serve(fixture.clone(), addr).await?;
    Ok((http, fixture))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcplane_mcp::jsonrpc::{INVALID_PARAMS, Message};
    use mcplane_mcp::server::{Dispatch, Server};
    use tokio::sync::mpsc;

    struct Client {
        server: Arc<Server>,
        fixture: Arc<ConformanceFixture>,
        session: Arc<Session>,
    }

    impl Client {
        async fn connect(capabilities: Value) -> Client {
            let fixture = Arc::new(ConformanceFixture::new());
            let server = Server::new(fixture.clone());
            let session = server.new_session(None);
            let c = Client {
                server,
                fixture,
                session,
            };
            let init = json!({"protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "t", "version": "0"}});
            let r = c.rpc("initialize", init).await;
            assert_eq!(r["result"]["serverInfo"]["name"], SERVER_NAME);
            c
        }

        async fn send(&self, id: Value, method: &str, params: Value) -> mpsc::Receiver<Value> {
            match self
                .server
                .dispatch(&self.session, Message::request(id, method, Some(params)))
                .await
            {
                Dispatch::Reply(rx) => rx,
                Dispatch::Accepted => panic!("expected a reply"),
            }
        }

        /// Every message of one request, response last.
        async fn exchange(&self, method: &str, params: Value) -> Vec<Value> {
            let mut rx = self.send(json!("req"), method, params).await;
            let mut out = Vec::new();
            while let Some(m) = rx.recv().await {
                out.push(m);
            }
            out
        }

        async fn rpc(&self, method: &str, params: Value) -> Value {
            self.exchange(method, params)
                .await
                .pop()
                .expect("a response")
        }

        async fn call(&self, tool: &str, args: Value) -> Value {
            self.rpc("tools/call", json!({"name": tool, "arguments": args}))
                .await
        }
    }

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }

    #[tokio::test]
    async fn initialize_and_lists() {
        let c = Client::connect(json!({})).await;
        let r = c.rpc("tools/list", json!({})).await;
        let tools = r["result"]["tools"].as_array().unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        let expected: Vec<&str> = TOOL_NAMES
            .iter()
            .chain(stateless::TOOL_NAMES.iter())
            .copied()
            .collect();
        assert_eq!(names, expected);
        for t in tools {
            assert_eq!(t["inputSchema"]["type"], "object");
            assert!(!t["description"].as_str().unwrap().is_empty());
        }
        let schema = &tools[13]["inputSchema"];
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["$defs"]["address"]["$anchor"], "addressDef");
        assert_eq!(schema["additionalProperties"], false);
        assert!(schema["allOf"][0]["anyOf"].is_array());
        assert!(
            schema["if"].is_object() && schema["then"].is_object() && schema["else"].is_object()
        );

        let r = c.rpc("prompts/list", json!({})).await;
        let prompts = r["result"]["prompts"].as_array().unwrap();
        let names: Vec<&str> = prompts
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names[..PROMPT_NAMES.len()], PROMPT_NAMES);
        assert_eq!(names[PROMPT_NAMES.len()..], [stateless::PROMPT_NAME]);
        assert!(prompts.iter().all(|p| p["description"].is_string()));
        let r = c.rpc("resources/list", json!({})).await;
        assert_eq!(r["result"]["resources"].as_array().unwrap().len(), 3);
        let r = c.rpc("resources/templates/list", json!({})).await;
        assert_eq!(
            r["result"]["resourceTemplates"][0]["uriTemplate"],
            DATA_TEMPLATE
        );
        assert_eq!(c.rpc("ping", json!({})).await["result"], json!({}));
    }

    #[tokio::test]
    async fn content_tools() {
        let c = Client::connect(json!({})).await;
        // No `arguments` at all, as the suite sends it.
        let r = c
            .rpc("tools/call", json!({"name": "test_simple_text"}))
            .await;
        assert_eq!(
            r["result"]["content"][0]["text"],
            "This is a simple text response for testing."
        );

        let r = c.call("test_image_content", json!({})).await;
        let img = &r["result"]["content"][0];
        assert_eq!(img["mimeType"], "image/png");
        assert_eq!(
            &b64(img["data"].as_str().unwrap())[..8],
            b"\x89PNG\r\n\x1a\n"
        );

        let r = c.call("test_audio_content", json!({})).await;
        let audio = &r["result"]["content"][0];
        assert_eq!(audio["type"], "audio");
        assert_eq!(audio["mimeType"], "audio/wav");
        let wav = b64(audio["data"].as_str().unwrap());
        assert_eq!((&wav[..4], &wav[8..12]), (&b"RIFF"[..], &b"WAVE"[..]));
        assert_eq!(
            u32::from_le_bytes(wav[4..8].try_into().unwrap()) as usize,
            wav.len() - 8
        );

        let r = c.call("test_embedded_resource", json!({})).await;
        assert_eq!(
            r["result"]["content"][0]["resource"]["uri"],
            "test://embedded-resource"
        );

        let r = c.call("test_multiple_content_types", json!({})).await;
        let types: Vec<&str> = r["result"]["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["text", "image", "resource"]);

        let r = c.call("test_error_handling", json!({})).await;
        assert_eq!(r["result"]["isError"], true);
        assert!(r["result"]["content"][0]["text"].is_string());

        let r = c.call("test_reconnection", json!({})).await;
        assert!(
            r["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("Reconnection test completed")
        );
    }

    #[tokio::test]
    async fn logging_tool_respects_the_session_level() {
        let c = Client::connect(json!({})).await;
        assert_eq!(
            c.rpc("logging/setLevel", json!({"level": "debug"})).await["result"],
            json!({})
        );
        let out = c
            .exchange(
                "tools/call",
                json!({"name": "test_tool_with_logging", "arguments": {}}),
            )
            .await;
        let logs: Vec<&Value> = out
            .iter()
            .filter(|m| m["method"] == "notifications/message")
            .collect();
        assert_eq!(logs.len(), 3);
        assert_eq!(logs[0]["params"]["data"], "Tool execution started");
        assert_eq!(logs[2]["params"]["level"], "info");
        assert!(out.last().unwrap()["result"].is_object());

        c.rpc("logging/setLevel", json!({"level": "warning"})).await;
        let out = c
            .exchange("tools/call", json!({"name": "test_tool_with_logging"}))
            .await;
        assert_eq!(out.len(), 1, "{out:?}");
        let r = c.rpc("logging/setLevel", json!({"level": "chatty"})).await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
    }

    #[tokio::test]
    async fn progress_notifications_precede_the_result() {
        let c = Client::connect(json!({})).await;
        let params = json!({"name": "test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "progress-test-1"}});
        let out = c.exchange("tools/call", params).await;
        assert_eq!(out.len(), 4);
        let values: Vec<i64> = out[..3]
            .iter()
            .map(|m| {
                assert_eq!(m["method"], "notifications/progress");
                assert_eq!(m["params"]["progressToken"], "progress-test-1");
                assert_eq!(m["params"]["total"], 100);
                m["params"]["progress"].as_i64().unwrap()
            })
            .collect();
        assert_eq!(values, [0, 50, 100]);
        assert!(
            out[3]["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("progress-test-1")
        );

        let out = c
            .exchange(
                "tools/call",
                json!({"name": "test_tool_with_progress", "_meta": {"progressToken": 7}}),
            )
            .await;
        assert_eq!(out[0]["params"]["progressToken"], 7);
        let out = c
            .exchange("tools/call", json!({"name": "test_tool_with_progress"}))
            .await;
        assert_eq!(out.len(), 1);
    }

    /// Runs a tool that asks the client something; answers with `reply`; returns (request, result).
    async fn round_trip(c: &Client, tool: &str, args: Value, reply: Value) -> (Value, Value) {
        let mut rx = c
            .send(
                json!(11),
                "tools/call",
                json!({"name": tool, "arguments": args}),
            )
            .await;
        let ask = rx.recv().await.unwrap();
        assert!(ask["id"].is_string(), "{ask}");
        let answer = Message::response(ask["id"].clone(), reply);
        assert!(matches!(
            c.server.dispatch(&c.session, answer).await,
            Dispatch::Accepted
        ));
        let done = rx.recv().await.unwrap();
        assert_eq!(done["id"], 11);
        assert!(rx.recv().await.is_none());
        (ask, done["result"].clone())
    }

    #[tokio::test]
    async fn sampling_round_trip() {
        let c = Client::connect(json!({"sampling": {}})).await;
        let reply = json!({"role": "assistant", "content": {"type": "text", "text": "Paris"}, "model": "m", "stopReason": "endTurn"});
        let (ask, result) = round_trip(
            &c,
            "test_sampling",
            json!({"prompt": "Capital of France?"}),
            reply,
        )
        .await;
        assert_eq!(ask["method"], "sampling/createMessage");
        assert_eq!(
            ask["params"]["messages"][0]["content"]["text"],
            "Capital of France?"
        );
        assert_eq!(ask["params"]["maxTokens"], 100);
        assert_eq!(result["content"][0]["text"], "LLM response: Paris");

        // Array content (2025-11-25).
        let reply = json!({"role": "assistant", "content": [{"type": "text", "text": "Lyon"}], "model": "m"});
        let (_, result) = round_trip(&c, "test_sampling", json!({"prompt": "p"}), reply).await;
        assert_eq!(result["content"][0]["text"], "LLM response: Lyon");

        // A client error becomes a tool error.
        let mut rx = c
            .send(
                json!(12),
                "tools/call",
                json!({"name": "test_sampling", "arguments": {"prompt": "p"}}),
            )
            .await;
        let ask = rx.recv().await.unwrap();
        let err = Message::error(
            ask["id"].clone(),
            &RpcError::new(-1, "user rejected sampling"),
        );
        c.server.dispatch(&c.session, err).await;
        let done = rx.recv().await.unwrap();
        assert_eq!(done["result"]["isError"], true);
        assert!(
            done["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("user rejected")
        );

        let r = c.call("test_sampling", json!({})).await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        assert!(r["error"]["message"].as_str().unwrap().contains("`prompt`"));
    }

    #[tokio::test]
    async fn sampling_and_elicitation_need_the_client_capability() {
        let c = Client::connect(json!({})).await;
        for (tool, args) in [
            ("test_sampling", json!({"prompt": "p"})),
            ("test_elicitation", json!({"message": "m"})),
        ] {
            let out = c
                .exchange("tools/call", json!({"name": tool, "arguments": args}))
                .await;
            assert_eq!(out.len(), 1, "no request may reach the client");
            assert_eq!(out[0]["result"]["isError"], true);
        }
    }

    #[tokio::test]
    async fn elicitation_round_trips() {
        let c = Client::connect(json!({"elicitation": {}})).await;
        let reply = json!({"action": "accept", "content": {"username": "testuser", "email": "t@example.com"}});
        let (ask, result) = round_trip(
            &c,
            "test_elicitation",
            json!({"message": "Who are you?"}),
            reply,
        )
        .await;
        assert_eq!(ask["method"], "elicitation/create");
        assert_eq!(ask["params"]["message"], "Who are you?");
        assert_eq!(ask["params"]["mode"], "form");
        assert_eq!(
            ask["params"]["requestedSchema"]["required"],
            json!(["username", "email"])
        );
        let text = result["content"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("User response: action=accept"), "{text}");
        assert!(text.contains("testuser"));

        let (ask, result) = round_trip(
            &c,
            "test_elicitation_sep1034_defaults",
            json!({}),
            json!({"action": "decline"}),
        )
        .await;
        let p = &ask["params"]["requestedSchema"]["properties"];
        assert_eq!(
            [
                &p["name"]["default"],
                &p["age"]["default"],
                &p["score"]["default"],
                &p["status"]["default"],
                &p["verified"]["default"]
            ],
            [
                &json!("John Doe"),
                &json!(30),
                &json!(95.5),
                &json!("active"),
                &json!(true)
            ]
        );
        assert_eq!(p["age"]["type"], "integer");
        assert_eq!(
            result["content"][0]["text"],
            "Elicitation completed: action=decline, content={}"
        );

        let (ask, _) = round_trip(
            &c,
            "test_elicitation_sep1330_enums",
            json!({}),
            json!({"action": "cancel"}),
        )
        .await;
        let p = &ask["params"]["requestedSchema"]["properties"];
        assert!(
            p["untitledSingle"]["enum"].is_array() && p["untitledSingle"].get("oneOf").is_none()
        );
        assert_eq!(
            p["titledSingle"]["oneOf"][0],
            json!({"const": "value1", "title": "First Option"})
        );
        assert_eq!(p["legacyEnum"]["enumNames"].as_array().unwrap().len(), 3);
        assert_eq!(p["untitledMulti"]["items"]["type"], "string");
        assert!(p["titledMulti"]["items"]["anyOf"].is_array());
    }

    #[tokio::test]
    async fn elicitation_omits_mode_for_older_clients() {
        let fixture = Arc::new(ConformanceFixture::new());
        let server = Server::new(fixture.clone());
        let session = server.new_session(None);
        let c = Client {
            server,
            fixture,
            session,
        };
        c.rpc(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}}}),
        )
        .await;
        let (ask, _) = round_trip(
            &c,
            "test_elicitation",
            json!({"message": "m"}),
            json!({"action": "cancel"}),
        )
        .await;
        assert!(ask["params"].get("mode").is_none());
    }

    #[tokio::test]
    async fn json_schema_tool_validates_its_arguments() {
        let c = Client::connect(json!({})).await;
        let r = c
            .call(
                JSON_SCHEMA_TOOL,
                json!({"name": "Ann", "email": "a@example.com", "address": {"city": "Oslo"}}),
            )
            .await;
        assert!(
            r["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("Oslo")
        );
        let r = c
            .call(
                JSON_SCHEMA_TOOL,
                json!({"contactMethod": "phone", "phone": "123"}),
            )
            .await;
        assert!(r["result"].is_object(), "{r}");
        for (bad, needle) in [
            (json!({"contactMethod": "phone", "email": "a@b"}), "`phone`"),
            (json!({"name": "x"}), "`email`"),
            (json!({"email": "a@b", "age": 3}), "`age`"),
            (json!({"email": 5}), "`email`"),
            (
                json!({"email": "a@b", "contactMethod": "fax"}),
                "`contactMethod`",
            ),
        ] {
            let r = c.call(JSON_SCHEMA_TOOL, bad.clone()).await;
            assert_eq!(r["error"]["code"], INVALID_PARAMS, "{bad}");
            assert!(
                r["error"]["message"].as_str().unwrap().contains(needle),
                "{bad}: {r}"
            );
        }
    }

    #[tokio::test]
    async fn resources_and_templates() {
        let c = Client::connect(json!({})).await;
        let r = c
            .rpc("resources/read", json!({"uri": STATIC_TEXT_URI}))
            .await;
        assert_eq!(
            r["result"]["contents"][0],
            json!({"uri": STATIC_TEXT_URI, "mimeType": "text/plain", "text": STATIC_TEXT})
        );
        let r = c
            .rpc("resources/read", json!({"uri": STATIC_BINARY_URI}))
            .await;
        assert_eq!(
            &b64(r["result"]["contents"][0]["blob"].as_str().unwrap())[1..4],
            b"PNG"
        );
        for id in ["123", "abc"] {
            let uri = format!("test://template/{id}/data");
            let r = c.rpc("resources/read", json!({"uri": uri})).await;
            let content = &r["result"]["contents"][0];
            assert_eq!(content["uri"], uri);
            let data: Value = serde_json::from_str(content["text"].as_str().unwrap()).unwrap();
            assert_eq!(
                data,
                json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")})
            );
        }
        for bad in [
            "test://template//data",
            "test://template/1/2/data",
            "test://nonexistent",
        ] {
            let r = c.rpc("resources/read", json!({"uri": bad})).await;
            assert_eq!(r["error"]["code"], RESOURCE_NOT_FOUND, "{bad}");
            assert_eq!(r["error"]["data"]["uri"], bad);
        }
    }

    #[tokio::test]
    async fn subscriptions_get_update_notifications() {
        let c = Client::connect(json!({})).await;
        let mut standalone = c.session.take_standalone().unwrap();
        assert_eq!(
            c.rpc("resources/subscribe", json!({"uri": WATCHED_URI}))
                .await["result"],
            json!({})
        );
        assert_eq!(c.fixture.subscriptions(c.session.id()), [WATCHED_URI]);
        let before = c.rpc("resources/read", json!({"uri": WATCHED_URI})).await;

        assert_eq!(c.fixture.update_resource(WATCHED_URI), 1);
        let n = standalone.recv().await.unwrap();
        assert_eq!(n["method"], "notifications/resources/updated");
        assert_eq!(n["params"]["uri"], WATCHED_URI);
        let after = c.rpc("resources/read", json!({"uri": WATCHED_URI})).await;
        assert_ne!(
            before["result"]["contents"][0]["text"],
            after["result"]["contents"][0]["text"]
        );

        assert_eq!(
            c.rpc("resources/unsubscribe", json!({"uri": WATCHED_URI}))
                .await["result"],
            json!({})
        );
        assert!(c.fixture.subscriptions(c.session.id()).is_empty());
        assert_eq!(c.fixture.update_resource(WATCHED_URI), 0);

        let r = c
            .rpc("resources/subscribe", json!({"uri": "test://nope"}))
            .await;
        assert_eq!(r["error"]["code"], RESOURCE_NOT_FOUND);
        c.rpc("resources/subscribe", json!({"uri": STATIC_TEXT_URI}))
            .await;
        assert!(c.server.close_session(c.session.id()));
        assert!(c.fixture.subscriptions(c.session.id()).is_empty());
    }

    #[tokio::test]
    async fn prompts() {
        let c = Client::connect(json!({})).await;
        let r = c
            .rpc("prompts/get", json!({"name": "test_simple_prompt"}))
            .await;
        assert_eq!(r["result"]["messages"][0]["role"], "user");
        let r = c.rpc("prompts/get", json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "testValue1", "arg2": "testValue2"}})).await;
        assert_eq!(
            r["result"]["messages"][0]["content"]["text"],
            "Prompt with arguments: arg1='testValue1', arg2='testValue2'"
        );
        let r = c
            .rpc(
                "prompts/get",
                json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "x"}}),
            )
            .await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        assert!(r["error"]["message"].as_str().unwrap().contains("`arg2`"));
        let r = c.rpc("prompts/get", json!({"name": "test_prompt_with_embedded_resource", "arguments": {"resourceUri": "test://example-resource"}})).await;
        assert_eq!(
            r["result"]["messages"][0]["content"]["resource"]["uri"],
            "test://example-resource"
        );
        let r = c
            .rpc("prompts/get", json!({"name": "test_prompt_with_image"}))
            .await;
        assert_eq!(r["result"]["messages"][0]["content"]["type"], "image");
        let r = c.rpc("prompts/get", json!({"name": "nope"})).await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
    }

    #[tokio::test]
    async fn completion() {
        let c = Client::connect(json!({})).await;
        let r = c.rpc("completion/complete", json!({"ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"}, "argument": {"name": "arg1", "value": "test"}})).await;
        assert_eq!(
            r["result"]["completion"]["values"],
            json!(["test", "testing", "tested"])
        );
        let r = c.rpc("completion/complete", json!({"ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"}, "argument": {"name": "arg2", "value": "PAR"}})).await;
        assert_eq!(
            r["result"]["completion"]["values"],
            json!(["paris", "park", "party"])
        );
        let r = c.rpc("completion/complete", json!({"ref": {"type": "ref/resource", "uri": DATA_TEMPLATE}, "argument": {"name": "id", "value": "4"}})).await;
        assert_eq!(r["result"]["completion"]["values"], json!(["42", "456"]));
        for bad in [
            json!({"ref": {"type": "ref/prompt", "name": "test_simple_prompt"}, "argument": {"name": "x", "value": ""}}),
            json!({"ref": {"type": "ref/prompt", "name": "nope"}, "argument": {"name": "arg1", "value": ""}}),
            json!({"ref": {"type": "ref/resource", "uri": DATA_TEMPLATE}, "argument": {"name": "x", "value": ""}}),
            json!({"ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"}}),
        ] {
            assert_eq!(
                c.rpc("completion/complete", bad.clone()).await["error"]["code"],
                INVALID_PARAMS,
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_tools_and_methods() {
        let c = Client::connect(json!({})).await;
        let r = c.call("nope", json!({})).await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        let r = c
            .rpc(
                "tools/call",
                json!({"name": "test_simple_text", "arguments": "x"}),
            )
            .await;
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        let r = c.rpc("tasks/list", json!({})).await;
        assert_eq!(r["error"]["code"], mcplane_mcp::jsonrpc::METHOD_NOT_FOUND);
    }
}
