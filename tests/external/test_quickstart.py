"""examples/quickstart.yaml works as documented: `mcplane` on PATH, demo tools behind /mcp."""

from __future__ import annotations

import asyncio
import os

import harness  # scripts/lib, put on sys.path by conftest.py
from mcp import Client


def test_quickstart_config_serves_the_demo():
    bin_dir = harness.mcplane_bin().resolve().parent
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc, base = harness.start_mcplane(harness.ROOT / "examples" / "quickstart.yaml",
                                       harness.ROOT / "target" / "external-tests" / "quickstart",
                                       env_extra=env)
    try:
        async def go():
            async with Client(f"{base}/mcp", read_timeout_seconds=30) as c:
                names = {t.name for t in (await c.list_tools()).tools}
                assert {"demo__echo", "demo__add", "demo__long_task", "demo__current_time"} <= names, names
                r = await c.call_tool("demo__add", {"a": 1, "b": 2})
                assert r.structured_content == {"sum": 3}

        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        leftovers = proc.stop()
    assert not leftovers, leftovers
