"""The official MCP Python SDK against a virtual server (`/mcp/curated`, see
scripts/lib/harness.py): only the curated tools are listed and callable, overrides show, progress
is relayed, hidden tools are unknown under any name, and legacy SSE works the same way."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest
from mcp import Client, MCPError
from mcp.client.sse import sse_client

TIMEOUT = 60.0
CURATED = {"say", "everything__get-sum", "demo__echo", "demo__add", "demo__long_task"}


def run(make: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(make(), TIMEOUT))


def url(stack) -> str:
    return f"{stack.base_url}/mcp/curated"


async def tool_names(c: Client) -> set[str]:
    names, cursor = set(), None
    while True:
        page = await c.list_tools(cursor=cursor)
        names |= {t.name for t in page.tools}
        cursor = page.next_cursor
        if not cursor:
            return names


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


def test_lists_and_calls_only_curated_tools(stack):
    async def go():
        async with Client(url(stack), read_timeout_seconds=30) as c:
            assert await tool_names(c) == CURATED
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert tools["say"].title == "Say"
            assert tools["demo__add"].output_schema is not None
            assert tools["demo__echo"].annotations.read_only_hint is True
            r = await c.call_tool("say", {"message": "curated"})
            assert text_of(r) == "Echo: curated"
            r = await c.call_tool("demo__add", {"a": 2, "b": 3})
            assert r.structured_content == {"sum": 5}

    run(go)


@pytest.mark.parametrize(
    "name", ["everything__echo", "echo", "demo__current_time", "current_time", "everything__get-tiny-image"]
)
def test_hidden_tools_are_unknown(stack, name):
    async def go():
        async with Client(url(stack), read_timeout_seconds=30) as c:
            with pytest.raises(MCPError) as e:
                await c.call_tool(name, {})
            assert e.value.error.code == -32602
            assert e.value.error.message == f"Unknown tool: {name}"

    run(go)


def test_progress_through_a_virtual_server(stack):
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async def go():
        async with Client(url(stack), read_timeout_seconds=30) as c:
            r = await c.call_tool("demo__long_task", {"steps": 3, "delay_ms": 20}, progress_callback=on_progress)
            assert "3 steps" in text_of(r)

    run(go)
    assert seen == [1, 2, 3], seen


def test_virtual_server_over_legacy_sse(stack):
    async def go():
        async with Client(sse_client(f"{url(stack)}/sse"), mode="legacy", read_timeout_seconds=30) as c:
            assert await tool_names(c) == CURATED
            r = await c.call_tool("say", {"message": "over sse"})
            assert text_of(r) == "Echo: over sse"

    run(go)


def test_unknown_virtual_server_is_not_the_catalogue(stack):
    async def go():
        async with Client(f"{stack.base_url}/mcp/nope", read_timeout_seconds=10) as c:
            await c.list_tools()

    with pytest.raises(BaseException):
        run(go)
