//! The format-neutral "model": from what a request says (last user text, tool results, tools,
//! tool choice, max tokens) to a deterministic answer (text or tool calls) and its token counts.
//! Each wire module fills a [`Prompt`] from its own request shape and renders the [`Answer`].

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// Whitespace-separated words: the mock's token count.
pub(crate) fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A declared tool.
pub(crate) struct ToolDef<'a> {
    pub name: Cow<'a, str>,
    /// Its JSON schema for the arguments, when declared.
    pub schema: Option<&'a RawValue>,
}

/// How the request constrains tool use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum ToolChoice<'a> {
    /// Call tools the user asked for by name.
    #[default]
    Auto,
    /// Never call a tool.
    Never,
    /// Call at least one tool.
    Required,
    /// Call this tool.
    Named(Cow<'a, str>),
}

/// What the wire module extracted from a request.
#[derive(Default)]
pub(crate) struct Prompt<'a> {
    /// Text of the last user message (parts joined by newlines).
    pub user_text: Cow<'a, str>,
    /// Texts of the tool results that end the conversation, if it ends with tool results.
    pub tool_results: Vec<Cow<'a, str>>,
    /// Words in every message's text.
    pub prompt_tokens: u64,
    pub tools: Vec<ToolDef<'a>>,
    pub choice: ToolChoice<'a>,
    pub max_tokens: Option<u64>,
}

/// A tool call the mock makes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolCall {
    pub name: String,
    /// A compact JSON object.
    pub arguments: String,
}

impl ToolCall {
    /// The arguments as a raw JSON value, to embed as an object.
    pub fn arguments_raw(&self) -> &RawValue {
        serde_json::from_str::<&RawValue>(&self.arguments).unwrap_or_else(|_| empty_object())
    }
}

fn empty_object() -> &'static RawValue {
    static EMPTY: std::sync::LazyLock<Box<RawValue>> = std::sync::LazyLock::new(|| {
        RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| Box::<RawValue>::default())
    });
    &EMPTY
}

/// The mock's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// Text; `truncated` when `max_tokens` cut it.
    Text { text: String, truncated: bool },
    /// One or more tool calls.
    Tools(Vec<ToolCall>),
}

/// The answer with its token counts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub reply: Reply,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Decides the answer to `prompt`.
pub(crate) fn answer(prompt: &Prompt<'_>) -> Answer {
    if prompt.tool_results.is_empty() {
        let calls = tool_calls(prompt);
        if !calls.is_empty() {
            let completion_tokens = calls.iter().map(|c| 1 + words(&c.arguments)).sum();
            return Answer {
                reply: Reply::Tools(calls),
                prompt_tokens: prompt.prompt_tokens,
                completion_tokens,
            };
        }
    }
    let mut text = if prompt.tool_results.is_empty() {
        let mut t = String::with_capacity(6 + prompt.user_text.len());
        t.push_str("echo: ");
        t.push_str(&prompt.user_text);
        t
    } else {
        let mut t = String::from("tool result: ");
        for (i, r) in prompt.tool_results.iter().enumerate() {
            if i > 0 {
                t.push_str("; ");
            }
            t.push_str(r);
        }
        t
    };
    let mut completion_tokens = words(&text);
    let mut truncated = false;
    if let Some(max) = prompt.max_tokens
        && max < completion_tokens
    {
        text.truncate(end_of_word(&text, max));
        completion_tokens = max;
        truncated = true;
    }
    Answer {
        reply: Reply::Text { text, truncated },
        prompt_tokens: prompt.prompt_tokens,
        completion_tokens,
    }
}

/// Byte offset just past the `n`-th whitespace-separated word (0 when `n` is 0).
fn end_of_word(text: &str, n: u64) -> usize {
    let mut seen = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                seen += 1;
                if seen == n {
                    return i;
                }
            }
            in_word = false;
        } else {
            if !in_word && seen == n {
                return i.min(text.len());
            }
            in_word = true;
        }
    }
    text.len()
}

/// Splits `text` into stream pieces: each word with the whitespace before it.
pub(crate) fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                pieces.push(&text[start..i]);
                start = i;
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Splits `text` into pieces of at most `max` bytes on character boundaries.
pub(crate) fn byte_pieces(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = max.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

fn tool_calls(prompt: &Prompt<'_>) -> Vec<ToolCall> {
    match &prompt.choice {
        ToolChoice::Never => Vec::new(),
        ToolChoice::Named(name) => {
            let schema = prompt
                .tools
                .iter()
                .find(|t| t.name == *name)
                .and_then(|t| t.schema);
            let after = mentions(&prompt.user_text, name).next().map(|(_, end)| end);
            vec![make_call(name, schema, &prompt.user_text, after)]
        }
        ToolChoice::Auto | ToolChoice::Required => {
            if prompt.tools.is_empty() {
                return Vec::new();
            }
            let mut mentioned: Vec<(usize, usize, &ToolDef<'_>)> = prompt
                .tools
                .iter()
                .flat_map(|t| mentions(&prompt.user_text, &t.name).map(move |(s, e)| (s, e, t)))
                .collect();
            mentioned.sort_by_key(|(start, _, _)| *start);
            if mentioned.is_empty() && prompt.choice == ToolChoice::Required {
                let first = &prompt.tools[0];
                return vec![make_call(
                    &first.name,
                    first.schema,
                    &prompt.user_text,
                    None,
                )];
            }
            mentioned
                .into_iter()
                .map(|(_, end, t)| make_call(&t.name, t.schema, &prompt.user_text, Some(end)))
                .collect()
        }
    }
}

/// Every `call <name>` (name followed by a non-name character) in `text`: (start, end).
fn mentions<'t>(text: &'t str, name: &'t str) -> impl Iterator<Item = (usize, usize)> + 't {
    let mut from = 0;
    std::iter::from_fn(move || {
        if name.is_empty() {
            return None;
        }
        while let Some(pos) = text[from..].find("call ") {
            let start = from + pos;
            from = start + 5;
            let rest = &text[start + 5..];
            if let Some(after) = rest.strip_prefix(name) {
                let next = after.chars().next();
                if next.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.')) {
                    return Some((start, start + 5 + name.len()));
                }
            }
        }
        None
    })
}

fn make_call(name: &str, schema: Option<&RawValue>, text: &str, after: Option<usize>) -> ToolCall {
    let explicit = after.and_then(|end| {
        let rest = text[end..].trim_start();
        if !rest.starts_with('{') {
            return None;
        }
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v @ Value::Object(_))) => Some(v),
            _ => None,
        }
    });
    let args = explicit.unwrap_or_else(|| {
        schema
            .and_then(|s| serde_json::from_str::<Value>(s.get()).ok())
            .map(|s| sample(&s, 0))
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::Object(serde_json::Map::new()))
    });
    ToolCall {
        name: name.to_owned(),
        arguments: args.to_string(),
    }
}

/// A value that satisfies `schema` (the simple JSON-schema subset tools use).
fn sample(schema: &Value, depth: u32) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return sample(first, depth + 1);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string")
            .to_ascii_lowercase(),
        _ if schema.get("properties").is_some() => "object".to_owned(),
        _ => "string".to_owned(),
    };
    match ty.as_str() {
        "object" => {
            let mut out = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let required: Option<Vec<&str>> = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect());
                for (k, v) in props {
                    if required.as_ref().is_none_or(|r| r.contains(&k.as_str())) {
                        out.insert(k.clone(), sample(v, depth + 1));
                    }
                }
            }
            Value::Object(out)
        }
        "integer" | "number" => Value::from(1),
        "boolean" => Value::Bool(true),
        "array" => Value::Array(Vec::new()),
        "null" => Value::Null,
        _ => Value::String("mock".to_owned()),
    }
}

/// A JSON value that is a string, an array of `T`, or null: message contents in every format.
#[derive(Debug, Default)]
pub(crate) enum Content<'a, T> {
    Text(Cow<'a, str>),
    Parts(Vec<T>),
    #[default]
    Null,
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Content<'a, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a, T>(PhantomData<(&'a (), T)>);
        impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for V<'a, T> {
            type Value = Content<'a, T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an array of parts, or null")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Content::<'a, T>::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(p) = seq.next_element()? {
                    parts.push(p);
                }
                Ok(Content::Parts(parts))
            }
        }
        deserializer.deserialize_any(V(PhantomData))
    }
}

/// Joins texts with newlines, borrowing when there is only one.
pub(crate) fn join<'a>(mut texts: Vec<Cow<'a, str>>) -> Cow<'a, str> {
    match texts.len() {
        0 => Cow::Borrowed(""),
        1 => texts.pop().unwrap_or_default(),
        _ => Cow::Owned(
            texts
                .iter()
                .map(|t| t.as_ref())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(text: &str) -> Prompt<'_> {
        Prompt {
            user_text: Cow::Borrowed(text),
            prompt_tokens: words(text),
            ..Prompt::default()
        }
    }

    #[test]
    fn echoes_and_counts_words() {
        let a = answer(&prompt("hello  big world"));
        assert_eq!(
            a.reply,
            Reply::Text {
                text: "echo: hello  big world".into(),
                truncated: false
            }
        );
        assert_eq!((a.prompt_tokens, a.completion_tokens), (3, 4));
    }

    #[test]
    fn max_tokens_truncates_on_word_boundaries() {
        let mut p = prompt("one two three");
        p.max_tokens = Some(2);
        let a = answer(&p);
        assert_eq!(
            a.reply,
            Reply::Text {
                text: "echo: one".into(),
                truncated: true
            }
        );
        assert_eq!(a.completion_tokens, 2);
        p.max_tokens = Some(0);
        assert_eq!(
            answer(&p).reply,
            Reply::Text {
                text: String::new(),
                truncated: true
            }
        );
    }

    #[test]
    fn pieces_rebuild_the_text() {
        let t = "echo: héllo  wörld ";
        assert_eq!(word_pieces(t).concat(), t);
        assert_eq!(word_pieces(t), vec!["echo:", " héllo", "  wörld", " "]);
        let j = r#"{"city":"Zürich"}"#;
        let p = byte_pieces(j, 8);
        assert_eq!(p.concat(), j);
        assert!(p.iter().all(|s| s.len() <= 9));
    }

    #[test]
    fn tool_calls_from_mentions_schema_and_explicit_args() {
        let schema: Box<RawValue> = RawValue::from_string(
            r#"{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"},"unit":{"enum":["c","f"]}},"required":["city","unit"]}"#.into(),
        )
        .unwrap();
        let mut p = prompt(r#"please call get_weather and call add {"a": 2, "b": 3}"#);
        p.tools = vec![
            ToolDef {
                name: "add".into(),
                schema: None,
            },
            ToolDef {
                name: "get_weather".into(),
                schema: Some(&schema),
            },
            ToolDef {
                name: "get".into(),
                schema: None,
            },
        ];
        let a = answer(&p);
        let Reply::Tools(calls) = a.reply else {
            panic!("no tool calls")
        };
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].arguments, r#"{"city":"mock","unit":"c"}"#);
        assert_eq!(calls[1].name, "add");
        assert_eq!(calls[1].arguments, r#"{"a":2,"b":3}"#);
        assert_eq!(a.completion_tokens, 2 + 2);

        p.choice = ToolChoice::Never;
        assert!(matches!(answer(&p).reply, Reply::Text { .. }));
        let mut q = prompt("no mention");
        q.tools = vec![ToolDef {
            name: "add".into(),
            schema: None,
        }];
        assert!(matches!(answer(&q).reply, Reply::Text { .. }));
        q.choice = ToolChoice::Required;
        assert!(matches!(answer(&q).reply, Reply::Tools(ref c) if c[0].name == "add"));
        q.choice = ToolChoice::Named("other".into());
        assert!(
            matches!(answer(&q).reply, Reply::Tools(ref c) if c[0].name == "other" && c[0].arguments == "{}")
        );
    }

    #[test]
    fn tool_results_are_answered() {
        let mut p = prompt("call add");
        p.tools = vec![ToolDef {
            name: "add".into(),
            schema: None,
        }];
        p.tool_results = vec!["5".into(), "ok".into()];
        assert_eq!(
            answer(&p).reply,
            Reply::Text {
                text: "tool result: 5; ok".into(),
                truncated: false
            }
        );
    }

    #[test]
    fn content_accepts_string_parts_and_null() {
        #[derive(serde::Deserialize)]
        struct P<'a> {
            #[serde(borrow)]
            text: Option<Cow<'a, str>>,
        }
        let c: Content<'_, P<'_>> = serde_json::from_str(r#""hi""#).unwrap();
        assert!(matches!(c, Content::Text(Cow::Borrowed("hi"))));
        let c: Content<'_, P<'_>> = serde_json::from_str(r#"[{"text":"a"},{"x":1}]"#).unwrap();
        assert!(matches!(c, Content::Parts(ref p) if p.len() == 2 && p[1].text.is_none()));
        let c: Content<'_, P<'_>> = serde_json::from_str("null").unwrap();
        assert!(matches!(c, Content::Null));
    }
}
