"""Summarise one run of the MCP conformance suite's server leg (standard library only).

Reads every `server-<scenario>-<timestamp>/checks.json` under a raw output directory and writes a
deterministic JSON summary (no timestamps, so the checked-in file only changes when results do):
per scenario the passed/failed/warning counts and the failing check ids, totals, and the run's
verdict against one or more expected-failures files, evaluated the way the suite does it
(only scored scenarios count; a listed check that now passes is "stale").

    python3 conformance_report.py --raw DIR --out FILE --leg NAME --target TEXT \
        --suite-exit N --scored FILE_WITH_SCENARIO_NAMES \
        --baseline PATH [--baseline PATH ...] [--write-baseline PATH]

Exit status: 0. The verdict is printed and stored; the caller decides what fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

DIR_RE = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:-\d+)?Z$")
RANK = {"FAILURE": 3, "WARNING": 2, "SUCCESS": 1}


def load_checks(raw: Path) -> dict[str, list[dict]]:
    """scenario -> checks, in the order the suite ran them (by directory timestamp)."""
    found: list[tuple[str, str, list[dict]]] = []
    for f in raw.glob("*/checks.json"):
        m = DIR_RE.match(f.parent.name)
        if not m:
            continue
        found.append((f.parent.name[-24:], m.group("scenario"), json.loads(f.read_text())))
    found.sort()
    return {scenario: checks for _, scenario, checks in found}


def dedupe(checks: list[dict]) -> list[dict]:
    """Per check id keep the worst status (what the suite's baseline comparison looks at)."""
    best: dict[str, int] = {}
    for i, c in enumerate(checks):
        if c.get("status") == "INFO":
            continue
        j = best.get(c["id"])
        if j is None or RANK.get(c["status"], 0) >= RANK.get(checks[j]["status"], 0):
            best[c["id"]] = i
    return [c for i, c in enumerate(checks) if c.get("status") == "INFO" or best.get(c["id"]) == i]


def read_baseline(path: Path) -> list[str]:
    """The `server:` list of an expected-failures YAML file (the simple shape the suite uses)."""
    entries: list[str] = []
    section = None
    for line in path.read_text().splitlines():
        s = line.split("#", 1)[0].rstrip()
        if not s.strip():
            continue
        if not s.startswith((" ", "-")):
            key, _, rest = s.partition(":")
            section = key.strip()
            if rest.strip() not in ("", "[]"):
                raise SystemExit(f"{path}: only block lists are supported ({line!r})")
            continue
        item = s.strip()
        if section == "server" and item.startswith("- "):
            entries.append(item[2:].strip().strip("'\""))
    return entries


def evaluate(results: dict[str, list[dict]], scored: set[str], baseline: list[str]) -> dict:
    whole = {e for e in baseline if ":" not in e}
    by_scenario: dict[str, set[str]] = {}
    for e in baseline:
        if ":" in e:
            sc, _, cid = e.partition(":")
            by_scenario.setdefault(sc, set()).add(cid)
    unexpected, stale, expected = [], [], []
    bad = lambda c: c["status"] in ("FAILURE", "WARNING")  # noqa: E731
    for sc, checks in results.items():
        if sc not in scored:
            continue
        if sc in whole:
            (expected if any(bad(c) for c in checks) else stale).append(sc)
            continue
        listed = by_scenario.get(sc)
        if listed is None:
            if any(bad(c) for c in checks):
                unexpected.append(sc)
            continue
        d = dedupe(checks)
        for c in d:
            if bad(c):
                (expected if c["id"] in listed else unexpected).append(f"{sc}:{c['id']}")
        for cid in sorted(listed):
            hit = next((c for c in d if c["id"] == cid and c["status"] != "INFO"), None)
            if hit is not None and hit["status"] == "SUCCESS":
                stale.append(f"{sc}:{cid}")
    return {"ok": not unexpected and not stale, "unexpected_failures": unexpected,
            "stale_entries": stale, "expected_failures": expected}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--leg", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--suite", default="@modelcontextprotocol/conformance@0.2.0-alpha.12")
    ap.add_argument("--requirements", default="2025-11-25")
    ap.add_argument("--suite-exit", type=int, required=True)
    ap.add_argument("--suite-baseline", type=Path, required=True, help="the file passed to --expected-failures")
    ap.add_argument("--scored", type=Path, required=True, help="scored server scenario names, one a line")
    ap.add_argument("--baseline", type=Path, action="append", default=[], help="also evaluate against this file")
    ap.add_argument("--write-baseline", type=Path, help="write this run's failures as an expected-failures file")
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="paths in the output are relative to this")
    a = ap.parse_args(argv)

    results = load_checks(a.raw)
    if not results:
        print(f"conformance_report: no checks.json under {a.raw}", file=sys.stderr)
        return 1
    scored = {ln.strip() for ln in a.scored.read_text().splitlines() if ln.strip()}

    def rel(p: Path) -> str:
        try:
            return str(p.resolve().relative_to(a.root.resolve()))
        except ValueError:
            return p.name

    scenarios = {}
    tot = {"passed": 0, "failed": 0, "warnings": 0, "skipped": 0}
    scored_pass = scored_total = 0
    for sc, checks in results.items():
        n = {k: sum(1 for c in checks if c.get("status") == s)
             for k, s in (("passed", "SUCCESS"), ("failed", "FAILURE"), ("warnings", "WARNING"), ("skipped", "SKIPPED"))}
        for k in tot:
            tot[k] += n[k]
        failing = sorted({c["id"] for c in checks if c.get("status") in ("FAILURE", "WARNING")})
        entry = {**n, "scored": sc in scored}
        if failing:
            entry["failing_checks"] = failing
            entry["errors"] = {c["id"]: (c.get("errorMessage") or "")[:300]
                               for c in checks if c.get("status") in ("FAILURE", "WARNING")}
        scenarios[sc] = entry
        if sc in scored:
            scored_total += 1
            scored_pass += not failing

    verdicts = {rel(a.suite_baseline): evaluate(results, scored, read_baseline(a.suite_baseline))}
    for b in a.baseline:
        verdicts[rel(b)] = evaluate(results, scored, read_baseline(b))

    report = {
        "suite": a.suite,
        "command": f"conformance server --url <mcp endpoint> --requirements {a.requirements} "
                   f"--expected-failures {rel(a.suite_baseline)}",
        "leg": a.leg,
        "target": a.target,
        "suite_exit_code": a.suite_exit,
        "totals": {**tot, "scenarios": len(results), "scored_scenarios": scored_total,
                   "scored_scenarios_passed": scored_pass},
        "baselines": verdicts,
        "scenarios": scenarios,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")

    if a.write_baseline:
        fails = []
        for sc, checks in results.items():
            for c in dedupe(checks):
                if c["status"] in ("FAILURE", "WARNING"):
                    fails.append(f"{sc}:{c['id']}")
        lines = []
        if a.write_baseline.exists():  # keep the file's leading comment block
            for ln in a.write_baseline.read_text().splitlines():
                if not ln.startswith("#"):
                    break
                lines.append(ln)
        lines.append("server:" + ("" if fails else " []"))
        lines += [f"  - {f}" for f in sorted(fails)]
        a.write_baseline.write_text("\n".join(lines) + "\n")

    t = report["totals"]
    print(f"[{a.leg}] {t['passed']} passed, {t['failed']} failed, {t['warnings']} warnings; "
          f"scored scenarios {t['scored_scenarios_passed']}/{t['scored_scenarios']} pass; suite exit {a.suite_exit}")
    for name, v in verdicts.items():
        state = "ok" if v["ok"] else "MISMATCH"
        print(f"[{a.leg}]   vs {name}: {state}; {len(v['expected_failures'])} expected, "
              f"{len(v['unexpected_failures'])} unexpected {v['unexpected_failures'] or ''}, "
              f"{len(v['stale_entries'])} now passing {v['stale_entries'] or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
