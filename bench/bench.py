#!/usr/bin/env python3
"""mcplane benchmark orchestrator: MCP `tools/call` round trips, direct vs through gateways.

Started by bench/run.sh (which builds mcplane and installs wrk and the peers); standard library only.

For each upstream (the fast Rust `mcplane demo-server`, the reference TypeScript
`@modelcontextprotocol/server-everything`) it starts, on loopback:

  direct          the upstream over Streamable HTTP
  mcplane         mcplane -> the same upstream over Streamable HTTP
  contextforge    IBM ContextForge -> the same upstream over Streamable HTTP
  mcplane-stdio   mcplane -> the upstream as a stdio child
  mcp-proxy       npm mcp-proxy -> the upstream as a stdio child (mcp-proxy only fronts stdio)

and drives each with wrk + bench/mcp_call.lua (sessions opened here beforehand, a unique JSON-RPC
id per request): saturation throughput (-t2 -c32), latency at concurrency 1 (-t1 -c1, back to
back), and latency at concurrency 1 with 1 ms think time between calls ("paced"). Every path
gets fresh processes (upstream and gateway) for each round, then a warm-up. Paths are
interleaved in rounds and the median round is reported. Before each path it waits for idle CPUs
(the machine is shared), measures the CPU other processes use during each run, and measures a
path again when that was more than BENCH_MAX_FOREIGN %. Then it measures memory per idle
downstream session (RSS before/after opening N sessions) on fresh gateway instances.

Writes bench/out/results.json, bench/out/results.md, raw wrk summaries in bench/out/raw/ and
process logs in bench/out/logs/, and prints the Markdown tables.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
RAW = OUT / "raw"
LOGS = OUT / "logs"
PEERS = BENCH / ".peers"
LUA = BENCH / "mcp_call.lua"

PROTO = "2025-11-25"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


ROUNDS = env_int("BENCH_ROUNDS", 3)
DURATION = env_int("BENCH_DURATION", 10)  # seconds per saturation / c=1 run
PACED_DURATION = env_int("BENCH_PACED_DURATION", 5)
PACED_DELAY_MS = env_int("BENCH_PACED_DELAY_MS", 1)
THREADS = env_int("BENCH_THREADS", 2)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 32)
WARMUP = env_int("BENCH_WARMUP", 3)
IDLE_SESSIONS = env_int("BENCH_IDLE_SESSIONS", 1000)
ONLY_UPSTREAMS = [u for u in os.environ.get("BENCH_UPSTREAMS", "fast,reference").split(",") if u]
SKIP_PATHS = {p for p in os.environ.get("BENCH_SKIP", "").split(",") if p}

MCPLANE = Path(os.environ.get("BENCH_MCPLANE", ROOT / "target/release/mcplane")).resolve()
NODE = os.environ.get("BENCH_NODE", shutil.which("node") or "node")
EVERYTHING = ROOT / ".tools/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
MCP_PROXY = PEERS / "npm/node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs"
CF_VENV = PEERS / "contextforge"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    def children(self) -> list[int]:
        out = []
        try:
            for task in os.listdir(f"/proc/{self.pid}/task"):
                with open(f"/proc/{self.pid}/task/{task}/children") as f:
                    out += [int(x) for x in f.read().split()]
        except OSError:
            pass
        return out


PROCS: list[Proc] = []


def start(name: str, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> Proc:
    logf = open(LOGS / f"{name}.log", "ab")
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=full_env,
        cwd=str(cwd) if cwd else None, start_new_session=True,
    )
    proc = Proc(name, p)
    PROCS.append(proc)
    return proc


def stop(proc: Proc) -> None:
    if proc.popen.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.popen.wait(timeout=8)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
    # whatever is left in its process group (e.g. mcp-proxy's child)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.popen.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if proc in PROCS:
        PROCS.remove(proc)


def stop_all() -> None:
    for proc in list(reversed(PROCS)):
        stop(proc)


def wait_until(what: str, check, timeout: float = 60.0, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.popen.returncode} (see bench/out/logs/{proc.name}.log)")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready after {timeout}s")


def tcp_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def http_status(port: int, path: str) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        c.request("GET", path)
        return c.getresponse().status
    finally:
        c.close()


def cpu_ticks(pid: int | None) -> int:
    if pid is None:
        return 0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except OSError:
        return 0


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def load1() -> float:
    return os.getloadavg()[0]


def cpu_totals() -> tuple[int, int]:
    """(all ticks, busy ticks) summed over CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    total = sum(v)
    return total, total - v[3] - v[4]  # idle, iowait


def cpu_busy_pct(seconds: float) -> float:
    t0, b0 = cpu_totals()
    time.sleep(seconds)
    t1, b1 = cpu_totals()
    return 100.0 * (b1 - b0) / max(t1 - t0, 1)


GATE_BUSY = env_int("BENCH_GATE_BUSY", 10)
GATE_MAX_WAIT = env_int("BENCH_GATE_MAX_WAIT", 90)


def wait_for_quiet(what: str) -> dict:
    """Before a path is measured (its processes idle): wait until the CPUs are nearly idle, i.e.
    nobody else on this shared machine is building, up to BENCH_GATE_MAX_WAIT seconds."""
    t0 = time.monotonic()
    while True:
        busy = cpu_busy_pct(2.0)
        waited = time.monotonic() - t0
        if busy < GATE_BUSY or waited >= GATE_MAX_WAIT:
            if waited > 2.5:
                log(f"  {what}: waited {waited:.0f}s for a quiet machine (now {busy:.0f}% busy)")
            return {"busy_pct": busy, "waited_s": waited}


# --------------------------------------------------------------------------------------------
# a minimal MCP Streamable HTTP client (for setup, sanity checks and idle sessions)


class Mcp:
    def __init__(self, port: int, path: str = "/mcp", auth: str | None = None):
        self.port, self.path, self.auth = port, path, auth
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.next_id = 1

    def close(self) -> None:
        self.conn.close()

    def post(self, msg: dict, sid: str | None = None) -> tuple[int, dict, dict | None]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTO,
        }
        if sid:
            headers["Mcp-Session-Id"] = sid
        if self.auth:
            headers["Authorization"] = self.auth
        body = json.dumps(msg).encode()
        for attempt in (1, 2):
            try:
                self.conn.request("POST", self.path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt == 2:
                    raise
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        parsed = None
        if "id" in msg and data:
            if hdrs.get("content-type", "").startswith("text/event-stream"):
                for line in data.decode().splitlines():
                    if line.startswith("data:") and line[5:].strip():
                        m = json.loads(line[5:])
                        if m.get("id") == msg["id"]:
                            parsed = m
            else:
                parsed = json.loads(data)
        return resp.status, hdrs, parsed

    def request(self, method: str, params: dict | None = None, sid: str | None = None) -> dict:
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        status, _, parsed = self.post(msg, sid)
        if status != 200 or parsed is None:
            raise RuntimeError(f"{method}: HTTP {status}, {parsed}")
        if "error" in parsed:
            raise RuntimeError(f"{method}: {parsed['error']}")
        return parsed["result"]

    def open_session(self) -> str:
        self.next_id += 1
        status, hdrs, parsed = self.post({
            "jsonrpc": "2.0", "id": self.next_id, "method": "initialize",
            "params": {"protocolVersion": PROTO, "capabilities": {},
                       "clientInfo": {"name": "mcplane-bench", "version": "1"}},
        })
        sid = hdrs.get("mcp-session-id")
        if status != 200 or not sid or parsed is None or "result" not in parsed:
            raise RuntimeError(f"initialize on :{self.port}{self.path}: HTTP {status}, {parsed}")
        status, _, _ = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
        if status not in (200, 202):
            raise RuntimeError(f"notifications/initialized: HTTP {status}")
        return sid


# --------------------------------------------------------------------------------------------
# upstreams and paths


@dataclass
class Upstream:
    key: str           # fast | reference
    title: str
    tool: str
    args: dict
    http_argv: callable   # port -> argv
    http_env: callable    # port -> env
    stdio_argv: list[str]


UPSTREAMS = {
    "fast": Upstream(
        "fast", "fast Rust upstream (`mcplane demo-server`)", "echo", {"text": "hello"},
        lambda port: [str(MCPLANE), "demo-server", "--listen", f"127.0.0.1:{port}"],
        lambda port: {},
        [str(MCPLANE), "demo-server"],
    ),
    "reference": Upstream(
        "reference", "reference server (`@modelcontextprotocol/server-everything`)", "echo",
        {"message": "hello"},
        lambda port: [NODE, str(EVERYTHING), "streamableHttp"],
        lambda port: {"PORT": str(port)},
        [NODE, str(EVERYTHING), "stdio"],
    ),
}


@dataclass
class Path_:
    key: str
    title: str
    leg: str                      # how the gateway reaches the upstream
    port: int
    mcp_path: str = "/mcp"
    auth: str | None = None
    tool: str = "echo"
    gateway: Proc | None = None   # process whose CPU/RSS is the gateway's
    upstream_pid: int | None = None
    sessions: list[str] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)


def write_mcplane_config(name: str, server: dict) -> Path:
    cfg = OUT / "configs" / f"{name}.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(json.dumps({"mcp": {"naming": {"prefix": "never"}, "servers": {"up": server}}}, indent=2) + "\n")
    return cfg


def start_mcplane(name: str, server: dict) -> tuple[Proc, int]:
    cfg = write_mcplane_config(name, server)
    port = free_port()
    proc = start(name, [str(MCPLANE), "serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"])
    wait_until(name, lambda: http_status(port, "/readyz") == 200, 30, proc)
    return proc, port


def start_mcp_proxy(name: str, child_argv: list[str]) -> tuple[Proc, int]:
    port = free_port()
    proc = start(name, [NODE, str(MCP_PROXY), "--host", "127.0.0.1", "--port", str(port),
                        "--server", "stream", "--", *child_argv])
    wait_until(name, lambda: tcp_open(port), 60, proc)
    return proc, port


def start_contextforge(name: str, upstream_url: str) -> tuple[Proc, int, str, str]:
    """Starts ContextForge on a fresh SQLite database and registers one upstream.

    Returns (process, port, bearer token, exposed echo tool name)."""
    workdir = OUT / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    port = free_port()
    env = {
        "DATABASE_URL": f"sqlite:///{workdir}/cf.db",
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "AUTH_ENCRYPTION_SECRET": secrets.token_urlsafe(48),
        "AUTH_REQUIRED": "true",
        "SSRF_ALLOW_LOCALHOST": "true",
        "USE_STATEFUL_SESSIONS": "true",
        "RATE_LIMITING_ENABLED": "false",
        "PLATFORM_ADMIN_EMAIL": "admin@example.com",
        "PLATFORM_ADMIN_PASSWORD": "Bench-" + secrets.token_urlsafe(12) + "-9x",
        "CACHE_TYPE": "memory",
        "LOG_LEVEL": "ERROR",
        "MCPGATEWAY_UI_ENABLED": "false",
        "MCPGATEWAY_ADMIN_API_ENABLED": "false",
    }
    py = str(CF_VENV / "bin/python")
    proc = start(name, [py, "-m", "mcpgateway.cli", "--host", "127.0.0.1", "--port", str(port)],
                 env=env, cwd=workdir)
    wait_until(name, lambda: http_status(port, "/health") == 200, 120, proc)
    tok_env = dict(os.environ)
    tok_env.update(env)
    out = subprocess.run(
        [py, "-m", "mcpgateway.utils.create_jwt_token", "-u", "admin@example.com", "--admin", "--exp", "10080"],
        env=tok_env, cwd=workdir, capture_output=True, text=True, check=True)
    token = out.stdout.strip().splitlines()[-1].strip()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/gateways", body=json.dumps({"name": "up", "url": upstream_url, "transport": "STREAMABLEHTTP"}),
              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status not in (200, 201):
        raise RuntimeError(f"{name}: POST /gateways -> {r.status} {body[:300]!r}")
    mcp = Mcp(port, "/mcp", f"Bearer {token}")
    sid = mcp.open_session()
    tools = [t["name"] for t in mcp.request("tools/list", {}, sid)["tools"]]
    mcp.close()
    echo = [t for t in tools if t.endswith("echo")]
    if not echo:
        raise RuntimeError(f"{name}: no echo tool among {tools}")
    return proc, port, token, echo[0]


PATH_KEYS = ["direct", "direct-1s", "mcplane", "contextforge", "mcplane-stdio", "mcp-proxy"]


def start_path(up: Upstream, key: str) -> Path_:
    """Starts fresh processes for one path: the upstream (HTTP, or as a stdio child) and the
    gateway in front of it. Fresh every time because the reference server keeps every event of
    every session in memory for resumability (an unbounded map), so a long-lived upstream gets
    slower with every call it has served and earlier paths would tax later ones."""
    if key in ("mcplane-stdio", "mcp-proxy"):
        if key == "mcplane-stdio":
            proc, p = start_mcplane(f"{up.key}-{key}", {"transport": "stdio", "command": up.stdio_argv[0],
                                                        "args": up.stdio_argv[1:]})
            title = "mcplane"
        else:
            proc, p = start_mcp_proxy(f"{up.key}-{key}", up.stdio_argv)
            title = "mcp-proxy"
        kids = proc.children()
        return Path_(key, title, "stdio", p, tool=up.tool, gateway=proc,
                     upstream_pid=kids[0] if kids else None, procs=[proc])
    port = free_port()
    upstream = start(f"{up.key}-upstream-for-{key}", up.http_argv(port), env=up.http_env(port))
    wait_until(f"{up.key} upstream", lambda: tcp_open(port), 60, upstream)
    url = f"http://127.0.0.1:{port}/mcp"
    if key == "direct":
        return Path_(key, "direct", "—", port, tool=up.tool, upstream_pid=upstream.pid, procs=[upstream])
    if key == "direct-1s":
        return Path_(key, "direct, one session", "—", port, tool=up.tool, upstream_pid=upstream.pid,
                     procs=[upstream])
    if key == "mcplane":
        proc, p = start_mcplane(f"{up.key}-{key}", {"transport": "streamable_http", "url": url})
        return Path_(key, "mcplane", "HTTP", p, tool=up.tool, gateway=proc, upstream_pid=upstream.pid,
                     procs=[proc, upstream])
    if key == "contextforge":
        proc, p, token, tool = start_contextforge(f"{up.key}-{key}", url)
        return Path_(key, "ContextForge", "HTTP", p, auth=f"Bearer {token}", tool=tool, gateway=proc,
                     upstream_pid=upstream.pid, procs=[proc, upstream])
    raise ValueError(key)


def open_sessions(path: Path_, n: int) -> list[str]:
    mcp = Mcp(path.port, path.mcp_path, path.auth)
    try:
        return [mcp.open_session() for _ in range(n)]
    finally:
        mcp.close()


def sanity_call(up: Upstream, path: Path_) -> None:
    mcp = Mcp(path.port, path.mcp_path, path.auth)
    try:
        res = mcp.request("tools/call", {"name": path.tool, "arguments": up.args}, path.sessions[0])
        text = json.dumps(res)
        if "hello" not in text or res.get("isError"):
            raise RuntimeError(f"{up.key}/{path.key}: unexpected echo result {text[:300]}")
    finally:
        mcp.close()


# --------------------------------------------------------------------------------------------
# wrk


def run_wrk(up: Upstream, path: Path_, kind: str, tag: str, duration: int) -> dict:
    if kind == "sat":
        shape = ["-t", str(THREADS), "-c", str(CONNECTIONS)]
        delay = 0
    else:
        shape = ["-t1", "-c1"]
        delay = PACED_DELAY_MS if kind == "paced" else 0
    out_file = RAW / f"{up.key}-{path.key}-{kind}-{tag}.json"
    env = dict(os.environ)
    env.update({
        "MCP_SESSIONS": ",".join(path.sessions),
        "MCP_PATH": path.mcp_path,
        "MCP_TOOL": path.tool,
        "MCP_ARGS": json.dumps(up.args, separators=(",", ":")),
        "MCP_AUTH": path.auth or "",
        "MCP_DELAY_MS": str(delay),
        "MCP_OUT": str(out_file),
    })
    argv = ["wrk", *shape, "-d", f"{duration}s", "--timeout", "10s", "--latency", "-s", str(LUA),
            f"http://127.0.0.1:{path.port}{path.mcp_path}"]
    gw_pid = path.gateway.pid if path.gateway else None
    t_gw, t_up = cpu_ticks(gw_pid), cpu_ticks(path.upstream_pid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = load1()
    c0 = cpu_totals()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    c1 = cpu_totals()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    d_gw, d_up = cpu_ticks(gw_pid) - t_gw, cpu_ticks(path.upstream_pid) - t_up
    wrk_ticks = ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) * CLK_TCK
    # CPU used by everything else on the machine during the run (other people's builds), in % of
    # the machine; a stdio child's own children and kernel threads count as foreign too.
    # /proc/stat counts USER_HZ ticks per CPU, like /proc/PID/stat.
    foreign = (c1[1] - c0[1]) - d_gw - d_up - wrk_ticks
    foreign_pct = max(0.0, 100.0 * foreign / max(c1[0] - c0[0], 1))
    if proc.returncode != 0 or not out_file.exists():
        raise RuntimeError(f"wrk failed for {up.key}/{path.key}/{kind}: {proc.stderr[-2000:]}")
    res = json.loads(out_file.read_text())
    res["stderr"] = proc.stderr[-1000:]
    secs = res["duration_us"] / 1e6
    res["rps"] = res["requests"] / secs if secs else 0.0
    n = max(res["requests"], 1)
    res["cpu_us_per_call"] = {
        "gateway": d_gw / CLK_TCK * 1e6 / n if gw_pid else None,
        "upstream": d_up / CLK_TCK * 1e6 / n if path.upstream_pid else None,
        "wrk": ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) * 1e6 / n,
    }
    res["load1_before"] = load_before
    res["foreign_cpu_pct"] = foreign_pct
    res["argv"] = " ".join(argv)
    out_file.write_text(json.dumps(res, indent=1) + "\n")
    errs = sum(res["errors"].values()) + res["bad"]
    log(f"  {up.key:9} {path.key:13} {kind:5} {tag}: {res['rps']:9.1f} req/s  p50 {res['latency_us']['p50']/1000:.3f} ms"
        f"  p99 {res['latency_us']['p99']/1000:.3f} ms  errors {errs}  others {foreign_pct:.0f}% CPU")
    return res


def median_by(runs: list[dict], f) -> float:
    return statistics.median(f(r) for r in runs)


def summarize(runs: list[dict]) -> dict:
    return {
        "rps": median_by(runs, lambda r: r["rps"]),
        "p50_ms": median_by(runs, lambda r: r["latency_us"]["p50"]) / 1000,
        "p99_ms": median_by(runs, lambda r: r["latency_us"]["p99"]) / 1000,
        "p999_ms": median_by(runs, lambda r: r["latency_us"]["p999"]) / 1000,
        "errors": sum(sum(r["errors"].values()) + r["bad"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "rounds_rps": [round(r["rps"], 1) for r in runs],
        "rounds_p99_ms": [r["latency_us"]["p99"] / 1000 for r in runs],
        "foreign_cpu_pct": [round(r["foreign_cpu_pct"], 1) for r in runs],
        "cpu_us_per_call": {
            k: (statistics.median(r["cpu_us_per_call"][k] for r in runs)
                if runs[0]["cpu_us_per_call"][k] is not None else None)
            for k in ("gateway", "upstream", "wrk")
        },
    }


MAX_FOREIGN = env_int("BENCH_MAX_FOREIGN", 15)
MAX_ATTEMPTS = env_int("BENCH_MAX_ATTEMPTS", 3)


def measure_path(up: Upstream, key: str, rnd: int) -> dict:
    """Fresh processes for one path, a quiet-machine gate, warm-up, then the three measurements."""
    path = start_path(up, key)
    try:
        path.sessions = open_sessions(path, 1 if key == "direct-1s" else CONNECTIONS)
        sanity_call(up, path)
        gate = wait_for_quiet(f"{up.key}/{key} r{rnd}")
        if WARMUP > 0:
            run_wrk(up, path, "sat", f"r{rnd}-warmup", WARMUP)
        got = {"path": path, "sat": run_wrk(up, path, "sat", f"r{rnd}", DURATION),
               "c1": run_wrk(up, path, "c1", f"r{rnd}", DURATION)}
        got["sat"]["gate"] = gate
        if PACED_DURATION > 0:
            got["paced"] = run_wrk(up, path, "paced", f"r{rnd}", PACED_DURATION)
        return got
    finally:
        for proc in path.procs:
            stop(proc)


def bench_upstream(up: Upstream) -> dict:
    keys = [k for k in PATH_KEYS if k not in SKIP_PATHS]
    log(f"== {up.title} (load {load1():.2f}); paths: {', '.join(keys)}")
    runs: dict[str, dict[str, list]] = {k: {"sat": [], "c1": [], "paced": []} for k in keys}
    meta: dict[str, Path_] = {}
    for rnd in range(1, ROUNDS + 1):
        log(f"-- round {rnd}/{ROUNDS} (load {load1():.2f})")
        # alternate the order so no path always runs right after the same neighbour
        for key in (keys if rnd % 2 else list(reversed(keys))):
            for attempt in range(1, MAX_ATTEMPTS + 1):
                got = measure_path(up, key, rnd)
                noisy = max(got["sat"]["foreign_cpu_pct"], got["c1"]["foreign_cpu_pct"])
                if noisy <= MAX_FOREIGN or attempt == MAX_ATTEMPTS:
                    break
                log(f"  {up.key}/{key} r{rnd}: other processes used {noisy:.0f}% of the machine; measuring again")
            for kind, res in got.items():
                if kind != "path":
                    runs[key][kind].append(res)
            meta[key] = got["path"]
    foreign = [r["foreign_cpu_pct"] for k in keys for kind in runs[k].values() for r in kind]
    result = {"upstream": up.key, "title": up.title, "paths": [],
              "foreign_cpu_pct": [statistics.median(foreign), max(foreign)]}
    for key in keys:
        p = meta[key]
        entry = {"key": key, "title": p.title, "leg": p.leg, "tool": p.tool,
                 "sat": summarize(runs[key]["sat"]), "c1": summarize(runs[key]["c1"])}
        if runs[key]["paced"]:
            entry["paced"] = summarize(runs[key]["paced"])
        result["paths"].append(entry)
    return result


# --------------------------------------------------------------------------------------------
# memory per idle downstream session


def idle_session_memory() -> list[dict]:
    up = UPSTREAMS["fast"]
    port = free_port()
    upstream = start("mem-upstream", up.http_argv(port))
    wait_until("mem upstream", lambda: tcp_open(port), 30, upstream)
    url = f"http://127.0.0.1:{port}/mcp"
    results = []

    def measure(key: str, title: str, pid: int, mcp_port: int, auth: str | None = None, n: int = IDLE_SESSIONS):
        # a few sessions first so one-time allocations (first connection, lazy statics) are not counted
        mcp = Mcp(mcp_port, "/mcp", auth)
        for _ in range(10):
            mcp.open_session()
        time.sleep(1.0)
        before = rss_kib(pid)
        t0 = time.monotonic()
        opened = 0
        for _ in range(n):
            mcp.open_session()
            opened += 1
            if time.monotonic() - t0 > 180:
                break
        secs = time.monotonic() - t0
        mcp.close()
        time.sleep(2.0)
        after = rss_kib(pid)
        r = {"key": key, "title": title, "sessions": opened, "rss_before_kib": before, "rss_after_kib": after,
             "kib_per_session": (after - before) / opened, "open_rate": opened / secs}
        log(f"  idle sessions {key:13}: {before} KiB -> {after} KiB over {opened} sessions = "
            f"{r['kib_per_session']:.2f} KiB/session ({r['open_rate']:.0f} sessions/s)")
        results.append(r)

    try:
        measure("direct", "upstream itself (`mcplane demo-server`)", upstream.pid, port)
        proc, p = start_mcplane("mem-mcplane", {"transport": "streamable_http", "url": url})
        measure("mcplane", "mcplane", proc.pid, p)
        stop(proc)
        if "mcp-proxy" not in SKIP_PATHS:
            proc, p = start_mcp_proxy("mem-mcp-proxy", up.stdio_argv)
            measure("mcp-proxy", "mcp-proxy (stdio child not counted)", proc.pid, p)
            stop(proc)
        if "contextforge" not in SKIP_PATHS:
            proc, p, token, _ = start_contextforge("mem-contextforge", url)
            measure("contextforge", "ContextForge", proc.pid, p, f"Bearer {token}")
            stop(proc)
    finally:
        stop(upstream)
    return results


# --------------------------------------------------------------------------------------------
# report


def fmt(x: float | None, nd: int = 2) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def tables(results: dict) -> str:
    lines = []
    for block in results["upstreams"]:
        d_rps, d50, d99 = baseline(block)
        lines.append(f"### {block['title']}\n")
        lines.append(f"Saturation: wrk -t{THREADS} -c{CONNECTIONS}; c=1: wrk -t1 -c1 back to back; "
                     f"paced: wrk -t1 -c1 with {PACED_DELAY_MS} ms between calls. Medians of {ROUNDS} rounds. "
                     "Baseline for ratios and \"added\" = the better of the two direct rows (highest req/s, lowest p50, lowest p99); "
                     "CPU = process CPU time per call during saturation. CPU used by other processes on the "
                     f"machine during the wrk runs: median {block['foreign_cpu_pct'][0]:.1f} %, "
                     f"max {block['foreign_cpu_pct'][1]:.1f} % of the machine.\n")
        lines.append(f"| path | upstream leg | req/s (c={CONNECTIONS}) | × direct | p50 c=1 ms | p99 c=1 ms | added p50 ms | added p99 ms "
                     "| paced p50 / p99 ms | gateway CPU µs/call | upstream CPU µs/call | errors | others' CPU % (max) |")
        lines.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for p in block["paths"]:
            s, c = p["sat"], p["c1"]
            paced = p.get("paced")
            errors = s["errors"] + c["errors"] + (paced["errors"] if paced else 0)
            if p["key"].startswith("direct"):
                add50 = add99 = "—"
            else:
                add50 = f"{c['p50_ms'] - d50:+.3f}"
                add99 = f"{c['p99_ms'] - d99:+.3f}"
            paced_s = f"{paced['p50_ms']:.3f} / {paced['p99_ms']:.3f}" if paced else "—"
            cpu = s["cpu_us_per_call"]
            lines.append(
                f"| {p['title']} | {p['leg']} | {s['rps']:.0f} | {s['rps'] / d_rps:.3f} | {c['p50_ms']:.3f} | "
                f"{c['p99_ms']:.3f} | {add50} | {add99} | {paced_s} | {fmt(cpu['gateway'], 0)} | "
                f"{fmt(cpu['upstream'], 0)} | {errors} | {max(s['foreign_cpu_pct'] + c['foreign_cpu_pct']):.0f} |")
        lines.append("")
    if results.get("memory"):
        lines.append("### Memory per idle downstream session\n")
        lines.append("RSS of the serving process before and after opening N sessions "
                     "(initialize + notifications/initialized, then idle), in front of the fast upstream.\n")
        lines.append("| process | sessions | RSS before KiB | RSS after KiB | KiB per session |")
        lines.append("|---|--:|--:|--:|--:|")
        for m in results["memory"]:
            lines.append(f"| {m['title']} | {m['sessions']} | {m['rss_before_kib']} | {m['rss_after_kib']} | {m['kib_per_session']:.2f} |")
        lines.append("")
    t = results.get("targets")
    if t:
        lines.append("### Targets (issue 3)\n")
        lines.append("| target | measured | met |")
        lines.append("|---|---|---|")
        for row in t:
            lines.append(f"| {row['target']} | {row['measured']} | {'met' if row['met'] else 'NOT met'} |")
        lines.append("")
    return "\n".join(lines)


def baseline(block: dict) -> tuple[float, float, float]:
    """The best direct numbers: (req/s, p50 ms, p99 ms) over the direct rows."""
    directs = [p for p in block["paths"] if p["key"].startswith("direct")]
    return (max(p["sat"]["rps"] for p in directs), min(p["c1"]["p50_ms"] for p in directs),
            min(p["c1"]["p99_ms"] for p in directs))


def targets(results: dict) -> list[dict]:
    rows = []
    blocks = {b["upstream"]: b for b in results["upstreams"]}

    def get(block, key):
        return next((p for p in block["paths"] if p["key"] == key), None)

    if "fast" in blocks and get(blocks["fast"], "mcplane"):
        _, _, d99 = baseline(blocks["fast"])
        m = get(blocks["fast"], "mcplane")
        added = m["c1"]["p99_ms"] - d99
        rows.append({"target": "added p99 ≤ 0.3 ms at c=1, mcplane in front of the fast upstream (HTTP leg)",
                     "measured": f"{added:+.3f} ms (p99 {m['c1']['p99_ms']:.3f} vs {d99:.3f} ms direct)",
                     "met": added <= 0.3})
    if "reference" in blocks and get(blocks["reference"], "mcplane"):
        d_rps, _, _ = baseline(blocks["reference"])
        m = get(blocks["reference"], "mcplane")
        ratio = m["sat"]["rps"] / d_rps
        rows.append({"target": "throughput ≥ 0.9× direct, mcplane in front of the reference server (HTTP leg)",
                     "measured": f"{ratio:.3f}× ({m['sat']['rps']:.0f} vs {d_rps:.0f} req/s direct)",
                     "met": ratio >= 0.9})
    return rows


def versions() -> dict:
    def run(argv, cwd=None):
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    def pkg_version(p: Path) -> str:
        try:
            return json.loads(p.read_text())["version"]
        except (OSError, ValueError, KeyError):
            return "?"

    return {
        "mcplane_rev": os.environ.get("BENCH_MCPLANE_REV") or run(["git", "rev-parse", "--short", "HEAD"], ROOT),
        "mcplane_source": os.environ.get("BENCH_MCPLANE_SOURCE", "work tree"),
        "wrk": run(["wrk", "--version"]).splitlines()[0] if run(["wrk", "--version"]) else "?",
        "node": run([NODE, "--version"]),
        "server_everything": pkg_version(EVERYTHING.parent.parent / "package.json"),
        "mcp_proxy": pkg_version(MCP_PROXY.parent.parent.parent / "package.json"),
        "contextforge": run([str(CF_VENV / "bin/python"), "-c",
                             "import importlib.metadata as m; print(m.version('mcp-contextforge-gateway'))"]),
        "python_contextforge": run([str(CF_VENV / "bin/python"), "--version"]),
    }


def machine() -> dict:
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": os.uname().release,
            "mem_total_mib": int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)}


def main() -> int:
    for d in (RAW, LOGS):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: (stop_all(), sys.exit(130)))
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results = {
        "started": started, "machine": machine(), "versions": versions(),
        "load_at_start": list(os.getloadavg()),
        "quiet_wait": json.loads(os.environ.get("BENCH_QUIET_LOG", "null")),
        "settings": {"rounds": ROUNDS, "duration_s": DURATION, "paced_duration_s": PACED_DURATION,
                     "paced_delay_ms": PACED_DELAY_MS, "threads": THREADS, "connections": CONNECTIONS,
                     "warmup_s": WARMUP, "idle_sessions": IDLE_SESSIONS},
        "upstreams": [],
    }
    log(f"machine: {results['machine']}, load {results['load_at_start']}")
    log(f"versions: {results['versions']}")
    try:
        if IDLE_SESSIONS > 0:
            log("== memory per idle downstream session")
            results["memory"] = idle_session_memory()
        for key in ONLY_UPSTREAMS:
            results["upstreams"].append(bench_upstream(UPSTREAMS[key]))
    finally:
        stop_all()
    results["load_at_end"] = list(os.getloadavg())
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results["targets"] = targets(results)
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    md = [f"## Results ({started}, mcplane {results['versions']['mcplane_rev']} from {results['versions']['mcplane_source']})\n",
          f"Machine: {results['machine']['nproc']} CPUs ({results['machine']['cpu']}), kernel {results['machine']['kernel']}; "
          f"load average at start {' '.join(f'{x:.2f}' for x in results['load_at_start'])}, "
          f"at end {' '.join(f'{x:.2f}' for x in results['load_at_end'])}.\n",
          tables(results)]
    text = "\n".join(md)
    (OUT / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
