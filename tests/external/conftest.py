"""Fixtures for the external-client tests: one mcplane with two upstreams for the whole session.

mcplane (target/debug/mcplane, or $MCPLANE_BIN) serves on a free loopback port with
  everything  @modelcontextprotocol/server-everything over Streamable HTTP
  demo        `mcplane demo-server` over stdio
and prefix mode `always`, so tools and prompts are `everything__…` and `demo__…`.
Process logs land in target/external-tests/ (kept for inspection after a failure).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))

import harness  # noqa: E402

LOG_DIR = ROOT / "target" / "external-tests" / "python-sdk"


@pytest.fixture(scope="session")
def stack():
    for tool in (harness.NODE, harness.EVERYTHING_JS):
        if not tool.exists():
            pytest.exit(f"{tool} missing: run scripts/install-tools.sh", returncode=2)
    if not harness.mcplane_bin().exists():
        pytest.exit(f"{harness.mcplane_bin()} missing: run cargo build --bins", returncode=2)
    with harness.gateway_stack(LOG_DIR, prefix="always") as s:
        yield s
    # A stdio upstream (or anything else) surviving mcplane's shutdown is a bug in mcplane.
    assert not s.leftovers, "mcplane shutdown left processes behind:\n" + "\n".join(s.leftovers)
