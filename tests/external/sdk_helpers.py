"""Helpers shared by the Python SDK tests: running a coroutine with a deadline, the text of a
tool result, and a sampling callback that answers `sampled: <the question>`."""

from __future__ import annotations

import asyncio
from typing import Any

from mcp import types

TIMEOUT = 60.0


def run(coro_fn: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro_fn(), TIMEOUT))


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


async def sample(_context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"sampled: {asked}"),
        model="test-model",
        stop_reason="endTurn",
    )
