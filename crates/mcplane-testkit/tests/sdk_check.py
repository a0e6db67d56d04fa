#!/usr/bin/env python3
"""Points the official `openai` and `anthropic` Python SDKs (and `google-genai`, when installed)
straight at `mcplane-mock-llm`, to prove the SDKs parse every response and stream the mock sends:
chat, streaming, tool calls (streamed too), tool round trips, embeddings (base64 by default and
floats), model listings, Azure, Anthropic streaming with tool_use, errors, retries, and what the
SDKs make of each stream fault.

Run by hand (not part of the test command):

    cargo build -p mcplane-testkit --bin mcplane-mock-llm
    .tools/venv/bin/python crates/mcplane-testkit/tests/sdk_check.py [--bin PATH] [--url URL]

It starts the binary (default `target/debug/mcplane-mock-llm`) unless `--url` points at a running
mock (which must accept the key `sk-mock`). Prints one line per check and `N passed, N failed`.
"""

import argparse
import json
import math
import os
import pathlib
import re
import subprocess
import sys
import traceback
import urllib.request

import anthropic
import openai

try:  # the SDKs' HTTP client: httpx2 for openai 3.x / anthropic 2.x, httpx before
    import httpx2 as httpx
except ImportError:
    import httpx

KEY = "sk-mock"
ROOT = pathlib.Path(__file__).resolve().parents[3]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]
A_TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": TOOLS[0]["function"]["parameters"],
    }
]

checks = []


def check(fn):
    checks.append(fn)
    return fn


class Mock:
    def __init__(self, url):
        self.url = url

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def faults(self, rules):
        return self.control("POST", "/__mock/faults", rules)

    def reset(self):
        self.control("POST", "/__mock/reset")

    def requests(self):
        return self.control("GET", "/__mock/requests")


def oai(mock, **kw):
    return openai.OpenAI(base_url=mock.url + "/v1", api_key=KEY, **kw)


def ant(mock, **kw):
    return anthropic.Anthropic(base_url=mock.url, api_key=KEY, **kw)


def expect_raises(exc_type, fn):
    try:
        fn()
    except exc_type as e:
        return e
    raise AssertionError(f"expected {exc_type.__name__}")


# ------------------------------------------------------------------------------------- OpenAI


@check
def openai_chat(mock):
    r = oai(mock).chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello big world"}]
    )
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-"), r
    assert r.model == "gpt-4o"
    c = r.choices[0]
    assert c.message.content == "echo: hello big world" and c.message.role == "assistant"
    assert c.finish_reason == "stop" and c.message.tool_calls is None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (5, 4, 9)
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    assert r.system_fingerprint


@check
def openai_chat_stream_with_usage(mock):
    stream = oai(mock).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, roles = "", None, None, []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == "echo: stream me please", text
    assert roles == ["assistant"] and finish == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 4)


@check
def openai_stream_helper_and_max_tokens(mock):
    client = oai(mock)
    with client.chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "one two"}]) as s:
        deltas = [e.delta for e in s if e.type == "content.delta"]
        final = s.get_final_completion()
    assert deltas == ["", "echo:", " one", " two"], deltas  # the first chunk carries content ""
    assert final.choices[0].message.content == "echo: one two" and final.usage is None
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "one two three four"}], max_tokens=3)
    assert r.choices[0].message.content == "echo: one two" and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3


@check
def openai_tool_call_round_trip(mock):
    client = oai(mock)
    msgs = [{"role": "user", "content": "please call get_weather for Paris"}]
    r = client.chat.completions.create(model="gpt-4o", messages=msgs, tools=TOOLS)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls" and c.message.content is None
    call = c.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "mock"}
    msgs.append(c.message.model_dump(exclude_none=True))
    msgs.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    r2 = client.chat.completions.create(model="gpt-4o", messages=msgs, tools=TOOLS)
    assert r2.choices[0].message.content == "tool result: sunny, 21C"
    # explicit arguments and forced tool choice
    r3 = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": 'call get_weather {"city": "Oslo", "days": 3}'}],
        tools=TOOLS,
    )
    assert json.loads(r3.choices[0].message.tool_calls[0].function.arguments) == {"city": "Oslo", "days": 3}
    r4 = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "anything"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert r4.choices[0].message.tool_calls[0].function.name == "get_weather"


@check
def openai_tool_call_stream(mock):
    client = oai(mock)
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": 'call get_weather {"city": "Zürich"} and call get_weather'}],
        tools=TOOLS,
        stream=True,
    )
    calls, finish = {}, None
    for chunk in stream:
        for c in chunk.choices:
            finish = c.finish_reason or finish
            for tc in c.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "args": ""})
                slot["id"] = tc.id or slot["id"]
                if tc.function:
                    slot["name"] += tc.function.name or ""
                    slot["args"] += tc.function.arguments or ""
    assert finish == "tool_calls"
    assert sorted(calls) == [0, 1], calls
    assert calls[0]["name"] == "get_weather" and json.loads(calls[0]["args"]) == {"city": "Zürich"}
    assert json.loads(calls[1]["args"]) == {"city": "mock"} and calls[0]["id"] != calls[1]["id"]
    # the SDK's accumulating helper agrees
    with client.chat.completions.stream(
        model="gpt-4o", messages=[{"role": "user", "content": "call get_weather"}], tools=TOOLS
    ) as s:
        final = s.get_final_completion()
    tc = final.choices[0].message.tool_calls[0]
    assert tc.function.name == "get_weather" and json.loads(tc.function.arguments) == {"city": "mock"}


@check
def openai_embeddings(mock):
    client = oai(mock)
    # the SDK asks for base64 by default and decodes it
    r = client.embeddings.create(model="text-embedding-3-small", input=["the quick brown fox", "the quick brown fox"])
    assert r.object == "list" and len(r.data) == 2 and r.data[1].index == 1
    v = r.data[0].embedding
    assert isinstance(v, list) and len(v) == 1536 and isinstance(v[0], float)
    assert abs(math.sqrt(sum(x * x for x in v)) - 1.0) < 1e-4
    assert r.data[0].embedding == r.data[1].embedding
    assert r.usage.prompt_tokens == 8 and r.usage.total_tokens == 8
    body = mock.requests()["requests"][-1]["body"]
    assert body["encoding_format"] == "base64", body
    f = client.embeddings.create(model="text-embedding-3-small", input="the quick brown fox", encoding_format="float", dimensions=64)
    assert len(f.data[0].embedding) == 64
    b = client.embeddings.create(model="text-embedding-3-small", input="the quick brown fox", dimensions=64)
    assert all(abs(x - y) < 1e-6 for x, y in zip(f.data[0].embedding, b.data[0].embedding))


@check
def openai_models(mock):
    client = oai(mock)
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o" in ids, ids
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"


@check
def openai_errors_and_retries(mock):
    bad = openai.OpenAI(base_url=mock.url + "/v1", api_key="sk-wrong-key-0000", max_retries=0)
    e = expect_raises(openai.AuthenticationError, lambda: bad.models.list())
    assert e.status_code == 401 and e.code == "invalid_api_key"
    msgs = [{"role": "user", "content": "hi"}]
    mock.faults([{"status": 429, "retry_after_ms": 10, "count": 1}])
    e = expect_raises(openai.RateLimitError, lambda: oai(mock, max_retries=0).chat.completions.create(model="gpt-4o", messages=msgs))
    assert e.code == "rate_limit_exceeded"
    mock.faults([{"status": 500, "count": 2, "retry_after_ms": 10}])
    mock.control("DELETE", "/__mock/requests")
    r = oai(mock, max_retries=2).chat.completions.create(model="gpt-4o", messages=msgs)
    assert r.choices[0].message.content == "echo: hi"
    log = mock.requests()
    assert [q["status"] for q in log["requests"]] == [500, 500, 200], log
    assert all(q["headers"]["authorization"] == f"Bearer {KEY}" for q in log["requests"])
    mock.faults([{"status": 503, "count": 1}])
    expect_raises(openai.InternalServerError, lambda: oai(mock, max_retries=0).chat.completions.create(model="gpt-4o", messages=msgs))
    e = expect_raises(openai.BadRequestError, lambda: oai(mock).chat.completions.create(model="gpt-4o", messages=[]))
    assert e.code == "empty_array"


def stream_text(client, **kw):
    text = ""
    for chunk in client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a b c d"}], stream=True, **kw):
        for c in chunk.choices:
            text += c.delta.content or ""
    return text


@check
def openai_stream_faults(mock):
    client = oai(mock, max_retries=0)
    mock.faults([{"error_event_after": 2, "count": 1}])
    e = expect_raises(openai.APIError, lambda: stream_text(client))
    assert "server had an error" in str(e), e
    mock.faults([{"malformed_event": 2, "count": 1}])
    expect_raises(json.JSONDecodeError, lambda: stream_text(client))
    mock.faults([{"drop_after_events": 3, "count": 1}])
    expect_raises((openai.APIConnectionError, httpx.RemoteProtocolError), lambda: stream_text(client))
    mock.faults([{"truncate": True, "count": 1}])
    assert stream_text(client) == "echo: a b c d"  # the SDK does not notice a missing [DONE]
    mock.faults([{"invalid_json": True, "count": 1}])
    expect_raises(Exception, lambda: client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}]))
    mock.faults([{"hang": True, "count": 1}])
    expect_raises(openai.APITimeoutError, lambda: oai(mock, max_retries=0, timeout=0.5).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}]))


@check
def azure_openai(mock):
    client = openai.AzureOpenAI(azure_endpoint=mock.url, api_key=KEY, api_version="2024-10-21")
    r = client.chat.completions.create(model="my-deployment", messages=[{"role": "user", "content": "hi azure"}])
    assert r.choices[0].message.content == "echo: hi azure"
    text = ""
    for chunk in client.chat.completions.create(model="my-deployment", messages=[{"role": "user", "content": "hi azure"}], stream=True):
        for c in chunk.choices:
            text += c.delta.content or ""
    assert text == "echo: hi azure"
    e = client.embeddings.create(model="my-embeddings", input="hi")
    assert len(e.data[0].embedding) == 1536
    last = mock.requests()["requests"][-1]
    assert last["path"] == "/openai/deployments/my-embeddings/embeddings" and last["headers"]["api-key"] == KEY
    bad = openai.AzureOpenAI(azure_endpoint=mock.url, api_key="nope", api_version="2024-10-21", max_retries=0)
    expect_raises(openai.AuthenticationError, lambda: bad.chat.completions.create(model="d", messages=[{"role": "user", "content": "x"}]))


# ------------------------------------------------------------------------------------- Anthropic


@check
def anthropic_message(mock):
    r = ant(mock).messages.create(
        model="claude-mock", max_tokens=100, system="be brief", messages=[{"role": "user", "content": "hello big world"}]
    )
    assert r.type == "message" and r.role == "assistant" and r.id.startswith("msg_")
    assert r.content[0].type == "text" and r.content[0].text == "echo: hello big world"
    assert r.stop_reason == "end_turn" and r.stop_sequence is None
    assert (r.usage.input_tokens, r.usage.output_tokens) == (5, 4)
    assert r.usage.cache_read_input_tokens == 0
    last = mock.requests()["requests"][-1]
    # anthropic-python 2.x sends the key as a bearer token, not x-api-key
    assert KEY in (last["headers"].get("x-api-key"), last["headers"].get("authorization", "").removeprefix("Bearer "))
    assert last["headers"]["anthropic-version"]


@check
def anthropic_stream_events(mock):
    events = []
    with ant(mock).messages.stream(model="claude-mock", max_tokens=100, messages=[{"role": "user", "content": "stream me"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "echo: stream me"
    assert final.content[0].text == text and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (2, 3)
    raw = ant(mock).messages.create(model="claude-mock", max_tokens=100, messages=[{"role": "user", "content": "x y"}], stream=True)
    events = [e.type for e in raw]
    assert events == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ], events  # the SDK drops ping


@check
def anthropic_tool_use_stream_and_round_trip(mock):
    client = ant(mock)
    msgs = [{"role": "user", "content": 'call get_weather {"city": "Zürich", "days": 2}'}]
    with client.messages.stream(model="claude-mock", max_tokens=100, messages=msgs, tools=A_TOOLS) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
    assert "input_json" in kinds, kinds
    block = final.content[0]
    assert block.type == "tool_use" and block.name == "get_weather" and block.id.startswith("toolu_")
    assert block.input == {"city": "Zürich", "days": 2}, block.input
    assert final.stop_reason == "tool_use"
    r = client.messages.create(model="claude-mock", max_tokens=100, messages=msgs, tools=A_TOOLS)
    assert r.content[0].input == {"city": "Zürich", "days": 2}
    msgs.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]})
    msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "cold, 3C"}]})
    r2 = client.messages.create(model="claude-mock", max_tokens=100, messages=msgs, tools=A_TOOLS)
    assert r2.content[0].text == "tool result: cold, 3C", r2
    forced = client.messages.create(
        model="claude-mock", max_tokens=100, messages=[{"role": "user", "content": "anything"}], tools=A_TOOLS,
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert forced.content[0].input == {"city": "mock"}


@check
def anthropic_count_tokens_models_and_errors(mock):
    client = ant(mock, max_retries=0)
    n = client.messages.count_tokens(model="claude-mock", messages=[{"role": "user", "content": "one two three"}])
    assert n.input_tokens == 3
    assert "claude-sonnet-4-5" in [m.id for m in client.models.list()]
    bad = anthropic.Anthropic(base_url=mock.url, api_key="wrong", max_retries=0)
    e = expect_raises(anthropic.AuthenticationError, lambda: bad.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]))
    assert e.body["error"]["type"] == "authentication_error"
    mock.faults([{"status": 529, "count": 1}])
    expect_raises(anthropic.OverloadedError, lambda: client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]))
    mock.faults([{"status": 429, "retry_after": 0, "count": 1}])
    expect_raises(anthropic.RateLimitError, lambda: client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]))
    mock.faults([{"error_event_after": 3, "count": 1}])

    def consume():
        with client.messages.stream(model="m", max_tokens=50, messages=[{"role": "user", "content": "a b c"}]) as s:
            for _ in s:
                pass

    e = expect_raises(anthropic.APIStatusError, consume)
    assert "overloaded_error" in str(e), e
    r = httpx.post(mock.url + "/v1/messages", headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
                   json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", r.text


# ------------------------------------------------------------------------------------- Gemini


@check
def gemini_google_genai(mock):
    try:
        from google import genai
        from google.genai import types
    except ImportError:
        return "skipped (google-genai not installed)"
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=mock.url))
    r = client.models.generate_content(model="gemini-2.5-flash", contents="hello big world")
    assert r.text == "echo: hello big world", r
    assert r.usage_metadata.prompt_token_count == 3 and r.usage_metadata.candidates_token_count == 4
    text = "".join(c.text or "" for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents="stream me"))
    assert text == "echo: stream me", text
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]))])
    r = client.models.generate_content(
        model="gemini-2.5-flash", contents="call get_weather",
        config=types.GenerateContentConfig(tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)))
    fc = r.function_calls[0]
    assert fc.name == "get_weather" and fc.args == {"city": "mock"}, fc
    r2 = client.models.generate_content(
        model="gemini-2.5-flash",
        contents=[
            types.Content(role="user", parts=[types.Part(text="call get_weather")]),
            r.candidates[0].content,
            types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"temp": 7})]),
        ],
        config=types.GenerateContentConfig(tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)))
    assert r2.text == 'tool result: {"temp": 7}', r2.text  # the functionResponse's JSON as sent
    # google-genai 3.x calls /v1/models/…; older versions /v1beta/models/…: the mock serves both
    paths = [(q["path"].split("/models/")[1], q["query"], "x-goog-api-key" in q["headers"]) for q in mock.requests()["requests"]]
    assert ("gemini-2.5-flash:streamGenerateContent", "alt=sse", True) in paths, paths
    e = client.models.embed_content(model="text-embedding-004", contents="hello")
    assert len(e.embeddings[0].values) == 1536
    print("  gemini paths:", sorted({q["path"] for q in mock.requests()["requests"]}))
    return f"google-genai {genai.__version__}"


# ------------------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("MOCK_LLM_BIN", str(ROOT / "target/debug/mcplane-mock-llm")))
    ap.add_argument("--url")
    args = ap.parse_args()
    proc = None
    url = args.url
    if not url:
        proc = subprocess.Popen([args.bin, "--listen", "127.0.0.1:0", "--api-key", KEY], stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline()
        m = re.search(r"addr=(\S+)", line)
        if not m:
            proc.kill()
            sys.exit(f"mock did not start: {line!r}")
        url = "http://" + m.group(1)
    mock = Mock(url)
    print(f"openai {openai.__version__}, anthropic {anthropic.__version__}, mock at {url}")
    passed = failed = 0
    try:
        for fn in checks:
            mock.reset()
            try:
                note = fn(mock)
                passed += 1
                print(f"PASS {fn.__name__}" + (f" — {note}" if note else ""))
            except Exception:
                failed += 1
                print(f"FAIL {fn.__name__}")
                traceback.print_exc()
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=5)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
