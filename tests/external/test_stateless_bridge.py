"""The official MCP Python SDK as a stateless (2026-07-28) client of mcplane, in front of
session-based upstreams (see conftest.py): server-everything's sampling and elicitation tools send
server→client requests on their session with mcplane; mcplane hands them to the SDK as
`input_required` results, and the SDK's callbacks answer them on retries. The same tools through
a session-based client get the requests directly, as before.
"""

from __future__ import annotations

from typing import Any

from mcp import Client, types
from sdk_helpers import run, sample, text_of


async def elicit(_context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"color": "blue", "number": 7, "pets": "cats"})


def test_sampling_round_trip_as_input_required(stack):
    async def go():
        async with Client(stack.mcp_url, mode="2026-07-28", read_timeout_seconds=30,
                          sampling_callback=sample) as c:
            assert c.protocol_version == "2026-07-28"
            r = await c.call_tool("everything__trigger-sampling-request",
                                  {"prompt": "capital of France?", "maxTokens": 20})
            assert not r.is_error, r
            assert "sampled: " in text_of(r) and "capital of France?" in text_of(r), text_of(r)

    run(go)


def test_elicitation_round_trip_as_input_required(stack):
    async def go():
        async with Client(stack.mcp_url, mode="2026-07-28", read_timeout_seconds=30,
                          elicitation_callback=elicit) as c:
            r = await c.call_tool("everything__trigger-elicitation-request", {})
            assert not r.is_error, r
            assert "accept" in text_of(r), text_of(r)

    run(go)


def test_session_based_clients_still_get_the_requests_directly(stack):
    async def go():
        async with Client(stack.mcp_url, mode="legacy", read_timeout_seconds=30,
                          sampling_callback=sample) as c:
            assert c.protocol_version == "2025-11-25"
            r = await c.call_tool("everything__trigger-sampling-request",
                                  {"prompt": "legacy?", "maxTokens": 20})
            assert "sampled: " in text_of(r), text_of(r)

    run(go)
