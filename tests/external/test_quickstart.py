"""The README's quick start works as documented.

* `mcplane serve` without a config serves the built-in demo server (the README's first command,
  `cargo run --release -- serve`, on a fresh clone: nothing on PATH needed).
* examples/quickstart.yaml with `mcplane` on PATH serves the demo tools behind /mcp.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import harness  # scripts/lib, put on sys.path by conftest.py
from mcp import Client

LOGS = harness.ROOT / "target" / "external-tests" / "quickstart"
DEMO_TOOLS = {"demo__echo", "demo__add", "demo__long_task", "demo__current_time"}


def serve_and_check(config: Path | None, env: dict[str, str]) -> None:
    proc, base = harness.start_mcplane(config, LOGS, env_extra=env)
    try:
        async def go():
            async with Client(f"{base}/mcp", read_timeout_seconds=30) as c:
                names = {t.name for t in (await c.list_tools()).tools}
                assert DEMO_TOOLS <= names, names
                r = await c.call_tool("demo__add", {"a": 1, "b": 2})
                assert r.structured_content == {"sum": 3}

        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        leftovers = proc.stop()
    assert not leftovers, leftovers


def test_serve_without_config_serves_the_demo():
    serve_and_check(None, {"PATH": "/usr/bin:/bin"})


def test_quickstart_config_serves_the_demo():
    bin_dir = harness.mcplane_bin().resolve().parent
    serve_and_check(harness.ROOT / "examples" / "quickstart.yaml",
                    {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
