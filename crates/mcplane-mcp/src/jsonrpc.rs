//! JSON-RPC 2.0 framing for MCP.
//!
//! A [`Message`] is a validated JSON-RPC object kept as the original `serde_json` map, so a relay
//! never drops fields it does not understand; accessors give typed views of the few fields mcplane
//! routes on. [`parse_body`] turns bytes from the network into messages (or a batch of them) with
//! the standard error codes; [`RpcError`] is a JSON-RPC error object.

use serde_json::{Map, Value, json};

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or is not available.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal JSON-RPC error.
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP: resource not found.
pub const RESOURCE_NOT_FOUND: i64 = -32002;
/// mcplane: the upstream server that owns the target is unavailable or timed out.
pub const UPSTREAM_UNAVAILABLE: i64 = -32001;
/// mcplane: the request was refused because the session or server is shutting down / closed.
pub const CONNECTION_CLOSED: i64 = -32000;
/// MCP 2026-07-28 `HeaderMismatch`: HTTP headers disagree with the body, or a required
/// header is missing or malformed (HTTP 400).
pub const HEADER_MISMATCH: i64 = -32020;
/// mcplane: the operation is not allowed for this caller (a policy denied it; the message names
/// the rule's reason, `data.policy` the rule).
pub const FORBIDDEN: i64 = -32003;
/// MCP 2026-07-28 `MissingRequiredClientCapability`: the request needs a client capability the
/// client did not declare in its `_meta` (HTTP 400); `data.requiredCapabilities` names it.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// MCP 2026-07-28 `UnsupportedProtocolVersion` (HTTP 400); `data.supported` lists the versions
/// the server speaks, `data.requested` echoes the one asked for.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// A JSON-RPC error object (`code`, `message`, optional `data`).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// Error code.
    pub code: i64,
    /// Human-readable message: says what was wrong and how to fix it.
    pub message: String,
    /// Optional structured detail.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }
    /// `-32700`.
    pub fn parse(message: impl Into<String>) -> Self {
        Self::new(PARSE_ERROR, message)
    }
    /// `-32600`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(INVALID_REQUEST, message)
    }
    /// `-32601` naming the method.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(METHOD_NOT_FOUND, format!("method not found: {method}"))
    }
    /// `-32602`.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
    /// `-32603`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(INTERNAL_ERROR, message)
    }
    /// `-32020` (HTTP 400).
    pub fn header_mismatch(message: impl Into<String>) -> Self {
        Self::new(HEADER_MISMATCH, message)
    }
    /// `-32021` naming the capabilities the client must declare (`{"sampling": {}}`).
    pub fn missing_capabilities<'a>(capabilities: impl IntoIterator<Item = &'a str>) -> Self {
        let caps: Map<String, Value> = capabilities
            .into_iter()
            .map(|c| (c.to_string(), json!({})))
            .collect();
        let names: Vec<&String> = caps.keys().collect();
        let message = format!(
            "this request needs client capabilities the client did not declare in \
             _meta[\"io.modelcontextprotocol/clientCapabilities\"]: {}",
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Self::new(MISSING_REQUIRED_CLIENT_CAPABILITY, message)
            .with_data(json!({"requiredCapabilities": caps}))
    }
    /// Attaches `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The error as a JSON object.
    pub fn to_value(&self) -> Value {
        let mut o = Map::new();
        o.insert("code".into(), self.code.into());
        o.insert("message".into(), self.message.clone().into());
        if let Some(d) = &self.data {
            o.insert("data".into(), d.clone());
        }
        Value::Object(o)
    }

    /// Reads an error object received from a peer; a malformed one becomes an internal error.
    pub fn from_value(v: &Value) -> Self {
        let code = v.get("code").and_then(Value::as_i64);
        let message = v.get("message").and_then(Value::as_str);
        match (code, message) {
            (Some(code), Some(message)) => RpcError {
                code,
                message: message.to_string(),
                data: v.get("data").cloned(),
            },
            _ => RpcError::internal("peer sent a malformed JSON-RPC error object"),
        }
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `id` and `method`.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id` and `result`.
    Response,
    /// Has `id` and `error`.
    Error,
}

/// A validated JSON-RPC 2.0 message, kept whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    obj: Map<String, Value>,
    kind: Kind,
}

/// Whether `id` is a valid MCP request id (string or integer; never null or fractional).
pub fn valid_id(id: &Value) -> bool {
    match id {
        Value::String(_) => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

impl Message {
    /// Validates a parsed JSON value as one JSON-RPC message. On failure returns the request id
    /// (when one could be read) with the error to answer.
    pub fn from_value(v: Value) -> Result<Message, (Value, RpcError)> {
        let Value::Object(obj) = v else {
            return Err((
                Value::Null,
                RpcError::invalid_request(
                    "expected a JSON-RPC 2.0 object such as {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
                ),
            ));
        };
        let id = obj.get("id").cloned();
        let echo = id.clone().filter(valid_id).unwrap_or(Value::Null);
        let fail = |m: &str| Err((echo.clone(), RpcError::invalid_request(m)));
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return fail("\"jsonrpc\" must be the string \"2.0\"");
        }
        if let Some(id) = &id
            && !valid_id(id)
        {
            return fail(
                "\"id\" must be a string or an integer (not null, fractional, or structured)",
            );
        }
        let kind = match (obj.get("method"), &id) {
            (Some(Value::String(_)), Some(_)) => Kind::Request,
            (Some(Value::String(_)), None) => Kind::Notification,
            (Some(_), _) => return fail("\"method\" must be a string"),
            (None, None) => {
                return fail(
                    "a message needs \"method\" (request or notification) or \"id\" (response)",
                );
            }
            (None, Some(_)) => match (obj.get("result"), obj.get("error")) {
                (Some(_), None) => Kind::Response,
                (None, Some(Value::Object(_))) => Kind::Error,
                _ => {
                    return fail(
                        "a response needs exactly one of \"result\" or \"error\" (an object)",
                    );
                }
            },
        };
        if let Some(p) = obj.get("params")
            && !matches!(p, Value::Object(_) | Value::Array(_))
        {
            return fail("\"params\" must be an object");
        }
        Ok(Message { obj, kind })
    }

    /// Builds a request.
    pub fn request(id: Value, method: &str, params: Option<Value>) -> Message {
        let mut obj = Map::new();
        obj.insert("jsonrpc".into(), "2.0".into());
        obj.insert("id".into(), id);
        obj.insert("method".into(), method.into());
        if let Some(p) = params {
            obj.insert("params".into(), p);
        }
        Message {
            obj,
            kind: Kind::Request,
        }
    }

    /// Builds a notification.
    pub fn notification(method: &str, params: Option<Value>) -> Message {
        let mut obj = Map::new();
        obj.insert("jsonrpc".into(), "2.0".into());
        obj.insert("method".into(), method.into());
        if let Some(p) = params {
            obj.insert("params".into(), p);
        }
        Message {
            obj,
            kind: Kind::Notification,
        }
    }

    /// Builds a success response.
    pub fn response(id: Value, result: Value) -> Message {
        let mut obj = Map::new();
        obj.insert("jsonrpc".into(), "2.0".into());
        obj.insert("id".into(), id);
        obj.insert("result".into(), result);
        Message {
            obj,
            kind: Kind::Response,
        }
    }

    /// Builds an error response (`id` may be null when the request id could not be read).
    pub fn error(id: Value, error: &RpcError) -> Message {
        let mut obj = Map::new();
        obj.insert("jsonrpc".into(), "2.0".into());
        obj.insert("id".into(), id);
        obj.insert("error".into(), error.to_value());
        Message {
            obj,
            kind: Kind::Error,
        }
    }

    /// The message's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// The `id`, if any.
    pub fn id(&self) -> Option<&Value> {
        self.obj.get("id")
    }
    /// Replaces the `id`.
    pub fn set_id(&mut self, id: Value) {
        self.obj.insert("id".into(), id);
    }
    /// The `method`, for requests and notifications.
    pub fn method(&self) -> Option<&str> {
        self.obj.get("method").and_then(Value::as_str)
    }
    /// The `params`.
    pub fn params(&self) -> Option<&Value> {
        self.obj.get("params")
    }
    /// Mutable `params`.
    pub fn params_mut(&mut self) -> Option<&mut Value> {
        self.obj.get_mut("params")
    }
    /// Takes `params` out.
    pub fn take_params(&mut self) -> Option<Value> {
        self.obj.remove("params")
    }
    /// Sets `params`.
    pub fn set_params(&mut self, params: Value) {
        self.obj.insert("params".into(), params);
    }
    /// The `result` of a success response.
    pub fn result(&self) -> Option<&Value> {
        self.obj.get("result")
    }
    /// The error of an error response.
    pub fn rpc_error(&self) -> Option<RpcError> {
        self.obj.get("error").map(RpcError::from_value)
    }
    /// Consumes the message into `Ok(result)` or `Err(error)` (for responses).
    pub fn into_outcome(mut self) -> Result<Value, RpcError> {
        match self.kind {
            Kind::Response => Ok(self.obj.remove("result").unwrap_or(Value::Null)),
            Kind::Error => Err(self
                .rpc_error()
                .unwrap_or_else(|| RpcError::internal("error"))),
            _ => Err(RpcError::internal("expected a response")),
        }
    }
    /// The whole message as JSON.
    pub fn into_value(self) -> Value {
        Value::Object(self.obj)
    }
    /// Borrowed JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.obj
    }
}

/// A body as received: one message or a batch (an array). Each batch item is checked separately.
#[derive(Debug)]
pub enum Body {
    /// One message.
    Single(Message),
    /// A JSON array of messages; invalid items carry the error to answer them with.
    Batch(Vec<Result<Message, (Value, RpcError)>>),
}

/// Parses bytes into a message or batch. Invalid UTF-8, invalid JSON, too-deep nesting (serde_json
/// stops at 128 levels) and non-object JSON are rejected with the error to send back.
pub fn parse_body(bytes: &[u8]) -> Result<Body, (Value, RpcError)> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        let why = if std::str::from_utf8(bytes).is_err() {
            "body is not valid UTF-8".to_string()
        } else if e.to_string().contains("recursion limit") {
            "JSON nesting is too deep".to_string()
        } else {
            format!("body is not valid JSON ({e})")
        };
        (Value::Null, RpcError::parse(why))
    })?;
    match v {
        Value::Array(items) => {
            if items.is_empty() {
                return Err((Value::Null, RpcError::invalid_request("empty batch")));
            }
            Ok(Body::Batch(
                items.into_iter().map(Message::from_value).collect(),
            ))
        }
        other => Message::from_value(other).map(Body::Single),
    }
}

/// A JSON error message body for an error with no usable request id.
pub fn error_value(id: Value, error: &RpcError) -> Value {
    Message::error(id, error).into_value()
}

/// Convenience: `{"jsonrpc":"2.0","id":id,"result":result}`.
pub fn response_value(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Message, (Value, RpcError)> {
        match parse_body(text.as_bytes())? {
            Body::Single(m) => Ok(m),
            Body::Batch(_) => panic!("batch"),
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                .unwrap()
                .kind(),
            Kind::Request
        );
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","method":"x"}"#).unwrap().kind(),
            Kind::Notification
        );
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#)
                .unwrap()
                .kind(),
            Kind::Response
        );
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"m"}}"#)
                .unwrap()
                .kind(),
            Kind::Error
        );
    }

    #[test]
    fn unknown_fields_survive() {
        let m =
            one(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"k":1}},"extra":[1]}"#)
                .unwrap();
        let v = m.into_value();
        assert_eq!(v["extra"], json!([1]));
        assert_eq!(v["params"]["_meta"]["k"], 1);
    }

    #[test]
    fn rejects_bad_messages_with_codes() {
        let code = |t: &str| one(t).unwrap_err().1.code;
        assert_eq!(code("{"), PARSE_ERROR);
        assert_eq!(code("42"), INVALID_REQUEST);
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":7}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#),
            INVALID_REQUEST
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#), INVALID_REQUEST);
    }

    #[test]
    fn invalid_id_error_echoes_valid_id_only() {
        let (id, _) = one(r#"{"jsonrpc":"1.0","id":7,"method":"x"}"#).unwrap_err();
        assert_eq!(id, json!(7));
    }

    #[test]
    fn deep_nesting_and_bad_utf8_are_parse_errors() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let (_, e) = parse_body(deep.as_bytes()).unwrap_err();
        assert_eq!(e.code, PARSE_ERROR);
        assert!(e.message.contains("too deep"), "{}", e.message);
        let (_, e) = parse_body(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}").unwrap_err();
        assert!(e.message.contains("UTF-8"), "{}", e.message);
    }

    #[test]
    fn batches_are_itemised() {
        match parse_body(br#"[{"jsonrpc":"2.0","id":1,"method":"a"}, 5]"#).unwrap() {
            Body::Batch(items) => {
                assert!(items[0].is_ok());
                assert!(items[1].is_err());
            }
            Body::Single(_) => panic!("expected batch"),
        }
        assert!(parse_body(b"[]").is_err());
    }
}
