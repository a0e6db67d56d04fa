#!/usr/bin/env python3
"""mcplane benchmark: merged `tools/list` latency across 1, 10 and 50 upstreams, cached and uncached.

Started by `bench/run.sh lists` (which builds mcplane and installs wrk); standard library only;
reuses bench/bench.py's process, session and wrk helpers.

For each N in BENCH_LIST_UPSTREAMS (default 1,10,50) it starts mcplane in front of N
`mcplane demo-server` stdio children (4 tools each, `prefix: always`) twice:

  cached    the default: each upstream's list is fetched once and served from the cache until
            the upstream announces a change (then one fetch serves every client)
  uncached  `list_ttl: 0s` on every upstream: every `tools/list` asks all N upstreams (in
            parallel) and merges, namespaces and pages the answers again

plus the same demo-server directly over Streamable HTTP (one upstream's `tools/list`, no gateway)
as the floor. Each is driven by wrk + bench/mcp_call.lua (MCP_METHOD=tools/list) at concurrency 1
(back to back: p50/p99) and at saturation (-t2 -c32: lists/s). Fresh processes per N and variant,
a warm-up first, BENCH_ROUNDS rounds (median reported). Writes bench/out/lists.{json,md}.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the orchestrator's helpers)
from bench import LOGS, LUA, MCPLANE, OUT, RAW, Mcp, free_port, http_status, log, start, stop, stop_all, wait_until  # noqa: E402

COUNTS = [int(n) for n in os.environ.get("BENCH_LIST_UPSTREAMS", "1,10,50").split(",") if n]
ROUNDS = bench.env_int("BENCH_ROUNDS", 3)
DURATION = bench.env_int("BENCH_LIST_DURATION", 5)
WARMUP = bench.env_int("BENCH_WARMUP", 2)


def start_gateway(n: int, variant: str) -> tuple[bench.Proc, int]:
    server = {"transport": "stdio", "command": str(MCPLANE), "args": ["demo-server"]}
    if variant == "uncached":
        server["list_ttl"] = "0s"
    config = {"mcp": {"naming": {"prefix": "always"},
                      "servers": {f"s{i:02}": server for i in range(1, n + 1)}}}
    cfg = OUT / "configs" / f"lists-{n}-{variant}.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(json.dumps(config, indent=2) + "\n")
    port = free_port()
    proc = start(f"lists-{n}-{variant}",
                 [str(MCPLANE), "serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"])
    wait_until(f"mcplane with {n} upstreams", lambda: http_status(port, "/readyz") == 200, 60, proc)
    return proc, port


def start_direct() -> tuple[bench.Proc, int]:
    port = free_port()
    proc = start("lists-direct", [str(MCPLANE), "demo-server", "--listen", f"127.0.0.1:{port}"])
    wait_until("demo-server", lambda: bench.tcp_open(port), 30, proc)
    return proc, port


def wrk(port: int, sessions: list[str], shape: list[str], duration: int, tag: str) -> dict:
    out_file = RAW / f"lists-{tag}.json"
    env = dict(os.environ, MCP_SESSIONS=",".join(sessions), MCP_PATH="/mcp",
               MCP_METHOD="tools/list", MCP_OUT=str(out_file))
    argv = ["wrk", *shape, "-d", f"{duration}s", "--timeout", "10s", "--latency", "-s", str(LUA),
            f"http://127.0.0.1:{port}/mcp"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not out_file.exists():
        raise RuntimeError(f"wrk failed ({tag}): {proc.stderr[-2000:]}")
    res = json.loads(out_file.read_text())
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    errors = sum(res["errors"].values()) + res["bad"]
    if errors:
        raise RuntimeError(f"{tag}: {errors} failed requests: {proc.stderr[-1000:]}")
    return res


def measure(key: str, n: int, rnd: int) -> dict:
    proc, port = start_direct() if key == "direct" else start_gateway(n, key)
    try:
        mcp = Mcp(port)
        sessions = [mcp.open_session() for _ in range(4)]
        tools = mcp.request("tools/list", {}, sessions[0])["tools"]
        expected = 4 * (1 if key == "direct" else n)
        if len(tools) != expected:
            raise RuntimeError(f"{key} with {n} upstreams lists {len(tools)} tools, expected {expected}")
        mcp.close()
        tag = f"{key}-{n}-r{rnd}"
        wrk(port, sessions, ["-t2", "-c32"], WARMUP, f"{tag}-warmup")
        sat = wrk(port, sessions, ["-t2", "-c32"], DURATION, f"{tag}-sat")
        c1 = wrk(port, sessions, ["-t1", "-c1"], DURATION, f"{tag}-c1")
        row = {"key": key, "upstreams": n, "tools": len(tools), "rps": sat["rps"],
               "p50_ms": c1["latency_us"]["p50"] / 1000, "p99_ms": c1["latency_us"]["p99"] / 1000}
        log(f"  {key:8} N={n:<3} {row['rps']:9.0f} lists/s  c=1 p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms")
        return row
    finally:
        stop(proc)


def main() -> int:
    for d in (RAW, LOGS):
        d.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    rows: dict[tuple[str, int], list[dict]] = {}
    try:
        for rnd in range(1, ROUNDS + 1):
            log(f"== round {rnd}/{ROUNDS}")
            plan = [("direct", 1)] + [(k, n) for n in COUNTS for k in ("cached", "uncached")]
            if rnd % 2 == 0:
                plan.reverse()
            for key, n in plan:
                rows.setdefault((key, n), []).append(measure(key, n, rnd))
    finally:
        stop_all()
    table = ["| path | upstreams | tools listed | lists/s (c=32) | p50 c=1 ms | p99 c=1 ms |",
             "|---|--:|--:|--:|--:|--:|"]
    summary = []
    for (key, n), runs in rows.items():
        med = {f: statistics.median(r[f] for r in runs) for f in ("rps", "p50_ms", "p99_ms")}
        summary.append({"key": key, "upstreams": n, "tools": runs[0]["tools"], **med, "rounds": runs})
    summary.sort(key=lambda r: (r["key"] != "direct", r["upstreams"], r["key"]))
    for r in summary:
        title = "direct (one demo-server, HTTP)" if r["key"] == "direct" else f"mcplane, {r['key']}"
        table.append(f"| {title} | {r['upstreams']} | {r['tools']} | {r['rps']:.0f} | "
                     f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} |")
    text = (f"### `tools/list` across upstreams ({started}, mcplane {os.environ.get('BENCH_MCPLANE_REV', '?')}, "
            f"median of {ROUNDS} rounds)\n\n" + "\n".join(table) + "\n")
    (OUT / "lists.json").write_text(json.dumps({"started": started, "machine": bench.machine(),
                                                 "load_at_end": list(os.getloadavg()),
                                                 "rows": summary}, indent=1) + "\n")
    (OUT / "lists.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
