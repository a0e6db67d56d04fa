"""The official MCP Python SDK (PyPI `mcp`) as a client of mcplane.

One mcplane aggregates two upstreams at once (see conftest.py): server-everything over Streamable
HTTP and `mcplane demo-server` over stdio, prefix mode `always`. Over Streamable HTTP (and legacy
SSE at /sse) the SDK lists and calls tools of both, reads resources, gets prompts, reads through
resource templates and completes arguments.
"""

from __future__ import annotations

import asyncio
import re
import warnings
from typing import Any, Awaitable, Callable

import pytest
from mcp import Client, MCPError
from mcp.client.sse import sse_client
from mcp.types import PromptReference, ResourceTemplateReference

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TIMEOUT = 60.0

# What each upstream offers (server-everything 2026.8.31; mcplane demo-server).
EVERYTHING_TOOLS = {"echo", "get-sum", "get-tiny-image", "get-structured-content"}
DEMO_TOOLS = {"echo", "add", "long_task", "current_time"}
EVERYTHING_TEMPLATE = "demo://resource/dynamic/text/{resourceId}"
DEMO_TEMPLATE = "demo://notes/{name}"


def run(make: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(make(), TIMEOUT))


def client(url: str, **kw: Any) -> Client:
    return Client(url, read_timeout_seconds=30, **kw)


async def all_pages(fetch: Callable[..., Awaitable[Any]], attr: str) -> list[Any]:
    items, cursor, seen = [], None, set()
    while True:
        page = await fetch(cursor=cursor)
        items.extend(getattr(page, attr))
        cursor = page.next_cursor
        if not cursor:
            return items
        assert cursor not in seen, f"cursor {cursor!r} repeated"
        seen.add(cursor)


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


# ---------------------------------------------------------------------------------------------


def test_initialize_merges_capabilities(stack):
    """mode="auto" probes server/discover first: mcplane answers it, so the SDK stays on the
    stateless 2026-07-28 protocol (every other test in this file without a mode runs that way,
    in front of two session-based upstreams)."""

    async def go():
        async with client(stack.mcp_url) as c:
            assert c.protocol_version == "2026-07-28"
            caps = c.server_capabilities
            # both upstreams have tools, prompts, resources and completions
            assert caps.tools is not None
            assert caps.prompts is not None
            assert caps.resources is not None
            assert caps.completions is not None

    run(go)


def test_lists_tools_of_both_upstreams(stack):
    async def go():
        async with client(stack.mcp_url) as c:
            tools = await all_pages(c.list_tools, "tools")
        names = [t.name for t in tools]
        assert len(names) == len(set(names)), f"duplicate names: {names}"
        for n in names:
            assert NAME_RE.match(n), f"exposed name {n!r} is not [A-Za-z0-9_.-]{{1,64}}"
            assert n.startswith(("everything__", "demo__")), f"unprefixed name {n!r} in prefix mode always"
        assert {f"everything__{t}" for t in EVERYTHING_TOOLS} <= set(names), names
        assert {f"demo__{t}" for t in DEMO_TOOLS} <= set(names), names
        return {t.name: t for t in tools}

    via = run(go)

    # Everything server-everything lists directly is there, with the same schema and description.
    async def direct():
        async with client(stack.everything_url) as c:
            return await all_pages(c.list_tools, "tools")

    for t in run(direct):
        mine = via.get(f"everything__{t.name}")
        assert mine is not None, f"{t.name} listed directly but not through mcplane"
        assert mine.input_schema == t.input_schema, t.name
        assert mine.description == t.description, t.name
        assert mine.annotations == t.annotations, t.name


def test_calls_a_tool_of_each_upstream(stack):
    async def go():
        async with client(stack.mcp_url) as c:
            await all_pages(c.list_tools, "tools")  # so the SDK validates structuredContent against outputSchema
            r = await c.call_tool("everything__echo", {"message": "hello through mcplane"})
            assert not r.is_error
            assert text_of(r) == "Echo: hello through mcplane"

            r = await c.call_tool("everything__get-sum", {"a": 19, "b": 23})
            assert "42" in text_of(r)

            r = await c.call_tool("demo__add", {"a": 2, "b": 40})
            assert not r.is_error
            assert r.structured_content == {"sum": 42}

            r = await c.call_tool("demo__echo", {"text": "hi from the demo"})
            assert "hi from the demo" in text_of(r)

    run(go)


def test_tool_results_pass_through_untouched(stack):
    async def go():
        async with client(stack.mcp_url) as c:
            await all_pages(c.list_tools, "tools")
            r = await c.call_tool("everything__get-tiny-image", {})
            kinds = [b.type for b in r.content]
            assert "image" in kinds, kinds
            img = next(b for b in r.content if b.type == "image")
            assert img.mime_type == "image/png" and len(img.data) > 100

            r = await c.call_tool("everything__get-structured-content", {"location": "New York"})
            assert r.structured_content is not None and "temperature" in r.structured_content

    run(go)


def test_errors_are_json_rpc_errors(stack):
    async def go():
        async with client(stack.mcp_url) as c:
            with pytest.raises(MCPError) as e:
                await c.call_tool("demo__add", {"a": "two", "b": 2})
            assert e.value.error.code == -32602, e.value.error

            # An unknown tool: a JSON-RPC error (mcplane knows no such name) or, as some servers do,
            # a tool result with isError.
            try:
                r = await c.call_tool("nosuchserver__tool", {})
            except MCPError as err:
                assert err.error.code in (-32602, -32601), err.error
            else:
                assert r.is_error, r

            # still usable afterwards
            r = await c.call_tool("demo__add", {"a": 1, "b": 1})
            assert r.structured_content == {"sum": 2}

    run(go)


def test_progress_notifications_are_relayed(stack):
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async def go():
        async with client(stack.mcp_url) as c:
            r = await c.call_tool("demo__long_task", {"steps": 3, "delay_ms": 20}, progress_callback=on_progress)
            assert "3 steps" in text_of(r)

    run(go)
    assert [p for p, _ in seen] == [1, 2, 3], seen


def test_reads_a_resource_of_each_upstream(stack):
    async def go():
        async with client(stack.mcp_url) as c:
            uris = {r.uri for r in await all_pages(c.list_resources, "resources")}
            assert "demo://readme" in uris, uris
            assert "demo://resource/static/document/features.md" in uris, uris

            r = await c.read_resource("demo://readme")
            assert r.contents[0].uri == "demo://readme"
            assert "mcplane demo server" in r.contents[0].text

            r = await c.read_resource("demo://resource/static/document/features.md")
            assert r.contents[0].text.startswith("# Everything Server")

    run(go)


def test_reads_through_resource_templates(stack):
    async def go():
        async with client(stack.mcp_url) as c:
            templates = {t.uri_template for t in await all_pages(c.list_resource_templates, "resource_templates")}
            assert {DEMO_TEMPLATE, EVERYTHING_TEMPLATE} <= templates, templates

            r = await c.read_resource("demo://notes/roadmap")
            assert r.contents[0].uri == "demo://notes/roadmap"

            r = await c.read_resource("demo://resource/dynamic/text/3")
            assert r.contents[0].uri == "demo://resource/dynamic/text/3"
            assert "Resource 3" in r.contents[0].text

            with pytest.raises(MCPError):
                await c.read_resource("nosuch://resource")

    run(go)


def test_gets_a_prompt_of_each_upstream(stack):
    async def go():
        async with client(stack.mcp_url) as c:
            prompts = {p.name: p for p in await all_pages(c.list_prompts, "prompts")}
            assert "demo__greeting" in prompts and "everything__args-prompt" in prompts, list(prompts)
            assert [a.name for a in prompts["demo__greeting"].arguments or []] == ["name"]

            r = await c.get_prompt("demo__greeting", {"name": "Ada"})
            assert any("Ada" in getattr(m.content, "text", "") for m in r.messages), r

            r = await c.get_prompt("everything__args-prompt", {"city": "Paris", "state": "IDF"})
            assert "Paris" in r.messages[0].content.text

    run(go)


def test_completes_arguments(stack):
    async def go():
        async with client(stack.mcp_url) as c:
            r = await c.complete(PromptReference(type="ref/prompt", name="demo__greeting"), {"name": "name", "value": "A"})
            assert {"Ada", "Alan", "Alice"} <= set(r.completion.values), r

            r = await c.complete(PromptReference(type="ref/prompt", name="everything__completable-prompt"),
                                 {"name": "department", "value": "E"})
            assert r.completion.values == ["Engineering"], r

            r = await c.complete(ResourceTemplateReference(type="ref/resource", uri=DEMO_TEMPLATE),
                                 {"name": "name", "value": "ro"})
            assert "roadmap" in r.completion.values, r

            r = await c.complete(ResourceTemplateReference(type="ref/resource", uri=EVERYTHING_TEMPLATE),
                                 {"name": "resourceId", "value": "1"})
            assert r.completion.values, r

    run(go)


def test_legacy_initialize_mode(stack):
    """mode="legacy": plain initialize handshake, no server/discover probe first."""

    async def go():
        async with client(stack.mcp_url, mode="legacy") as c:
            assert c.protocol_version == "2025-11-25"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "ping is removed as of 2026-07-28"
                await c.send_ping()
            names = {t.name for t in await all_pages(c.list_tools, "tools")}
            assert "demo__add" in names and "everything__echo" in names
            r = await c.call_tool("demo__add", {"a": 3, "b": 4})
            assert r.structured_content == {"sum": 7}

    run(go)


def test_concurrent_clients_get_their_own_answers(stack):
    """Two sessions whose JSON-RPC ids collide (each SDK client counts from 0) get their own results."""

    async def one(tag: str):
        async with client(stack.mcp_url) as c:
            await all_pages(c.list_tools, "tools")
            outs = await asyncio.gather(*(c.call_tool("demo__echo", {"text": f"{tag}-{i}"}) for i in range(10)),
                                        *(c.call_tool("everything__echo", {"message": f"{tag}-{i}"}) for i in range(5)))
            texts = [text_of(r) for r in outs]
            assert texts[:10] == [f"{tag}-{i}" for i in range(10)], texts
            assert texts[10:] == [f"Echo: {tag}-{i}" for i in range(5)], texts

    async def go():
        await asyncio.gather(one("a"), one("b"), one("c"))

    run(go)


def test_legacy_sse_transport(stack):
    """The SDK's HTTP+SSE (2024-11-05 transport) client against mcplane's /sse."""

    async def go():
        async with Client(sse_client(stack.sse_url), mode="legacy", read_timeout_seconds=30) as c:
            names = {t.name for t in await all_pages(c.list_tools, "tools")}
            assert {"demo__add", "everything__echo"} <= names, names
            r = await c.call_tool("everything__echo", {"message": "over sse"})
            assert text_of(r) == "Echo: over sse"
            r = await c.call_tool("demo__add", {"a": 5, "b": 5})
            assert r.structured_content == {"sum": 10}
            r = await c.read_resource("demo://readme")
            assert "mcplane demo server" in r.contents[0].text
            r = await c.get_prompt("demo__greeting", {"name": "Grace"})
            assert r.messages

    run(go)


def test_stdio_mode(stack):
    """`mcplane stdio --config FILE`, launched by the SDK as its one MCP server (as a desktop client
    would), aggregates the same two upstreams; when the client closes stdin, mcplane exits and
    takes its stdio upstream (demo-server) with it."""
    import harness  # scripts/lib, put on sys.path by conftest.py
    from mcp import StdioServerParameters

    mcplane = str(harness.mcplane_bin())
    before = set(harness.pids_with_cmdline(mcplane))
    params = StdioServerParameters(command=mcplane, args=["stdio", "--config", str(stack.config_path)],
                                   env={"PATH": "/usr/bin:/bin", "RUST_LOG": "info"})

    async def go():
        async with Client(params, read_timeout_seconds=30) as c:
            names = {t.name for t in await all_pages(c.list_tools, "tools")}
            assert {"demo__add", "everything__echo"} <= names, names
            r = await c.call_tool("demo__add", {"a": 20, "b": 22})
            assert r.structured_content == {"sum": 42}
            r = await c.call_tool("everything__echo", {"message": "over stdio"})
            assert text_of(r) == "Echo: over stdio"
            r = await c.get_prompt("demo__greeting", {"name": "Linus"})
            assert r.messages
            r = await c.complete(PromptReference(type="ref/prompt", name="demo__greeting"), {"name": "name", "value": "Li"})
            assert "Linus" in r.completion.values, r

    run(go)
    left = harness.wait_gone(lambda: set(harness.pids_with_cmdline(mcplane)) - before, timeout=10)
    assert not left, f"processes left after the stdio client closed: {left}"
