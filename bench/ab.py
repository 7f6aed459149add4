"""Compare two versions of the platform on this machine: `python -m bench.ab --base REV`.

The machine's speed drifts by a factor of two between runs here, so a change is measured in
alternating pairs, each run on a fresh embedded platform: A is `--base` (checked out in a
temporary git worktree), B the working tree, with `--env` set for B only (the same code on both
sides when `--base` is omitted and only a setting is compared). Two measurements:

- `replay`: the synthetic bank at `--scale` produced first, then the services started; the rate
  until profile has applied every event and until every consumer group has caught up, and the CPU
  each service and PostgreSQL used, per inbound event.
- `latency`: the bank replayed and caught up, then `bench.run`'s latency run (`--rate` events/s of
  background, `--probes` VIP balances); p50, p90 and p99 to `tier.changed` and `task.created`, and
  the cores the platform used meanwhile.

Results go to stdout, one line a run, then each side's range; nothing is written to the docs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, embedded_platform, percentile
from bench.run import cpu_seconds, drained, latency_under_load, postgres_cpu_seconds, scrape, total
from c360.ops import produce_all
from c360.simulate import SyntheticBank
from contracts import C360_TASKS, C360_TIERS, Product

RESULT_PREFIX = "bench.ab result: "
PROFILE_COUNTERS = ("c360_events_consumed_total", "c360_events_duplicate_total", "c360_events_dead_lettered_total")


def run_one(mode: str, scale: float, rate: int, probes: int) -> dict[str, Any]:
    """One measurement on a fresh platform, of the code this process imports."""
    with embedded_platform("ab") as platform:
        bank = SyntheticBank(seed=7, scale=scale)
        events = list(bank.events())
        asyncio.run(produce_all(platform.bootstrap, events, client_id="bench-ab"))
        processes = platform.services()
        postgres_before = postgres_cpu_seconds(platform.work / "pgdata")
        started = time.perf_counter()
        processes.start()
        processes.wait_healthy(timeout_s=120)
        result: dict[str, Any] = {}
        if mode == "replay":
            while True:
                handled = sum(
                    total(scrape(processes.url("profile")), n, group="c360-profile") for n in PROFILE_COUNTERS
                )
                if handled >= len(events):
                    result["profile_events_per_s"] = len(events) / (time.perf_counter() - started)
                    break
                time.sleep(0.5)
        drained(platform.bootstrap, timeout_s=3600)
        if mode == "replay":
            result["chain_events_per_s"] = len(events) / (time.perf_counter() - started)
            used = {name: cpu_seconds(p.pid) for name, p in processes.processes.items()}
            used["postgres"] = postgres_cpu_seconds(platform.work / "pgdata") - postgres_before
            result["cpu_ms_per_event"] = {name: s / len(events) * 1000 for name, s in used.items()}
            result["cpu_ms_per_event_total"] = sum(used.values()) / len(events) * 1000
            return result
        current = [
            (c.key, a.ref)
            for c in bank.customers()
            for a in c.accounts
            if a.product is Product.CURRENT and a.currency == "CNY"
        ]
        before = {name: cpu_seconds(p.pid) for name, p in processes.processes.items()}
        postgres_before = postgres_cpu_seconds(platform.work / "pgdata")
        started = time.perf_counter()
        latency = asyncio.run(latency_under_load(platform.bootstrap, current, probes, rate))
        elapsed = time.perf_counter() - started
        used = {name: cpu_seconds(p.pid) - before[name] for name, p in processes.processes.items()}
        used["postgres"] = postgres_cpu_seconds(platform.work / "pgdata") - postgres_before
        result["cores"] = {name: s / elapsed for name, s in used.items()}
        for topic, label in ((C360_TIERS, "tier"), (C360_TASKS, "task")):
            values = latency[topic]
            result[label] = {"n": len(values), **{f"p{p}": percentile(values, p) for p in (50, 90, 99)}}
        return result


def summary(result: dict[str, Any]) -> str:
    if "cpu_ms_per_event" in result:
        cpu = result["cpu_ms_per_event"]
        return (
            f"profile {result['profile_events_per_s']:,.0f}/s, chain {result['chain_events_per_s']:,.0f}/s; "
            "CPU ms an event "
            + " ".join(f"{n} {v:.3f}" for n, v in cpu.items())
            + f" total {result['cpu_ms_per_event_total']:.3f}"
        )
    parts = [
        f"{label} n={result[label]['n']} p50 {result[label]['p50']:.0f} p90 {result[label]['p90']:.0f} "
        f"p99 {result[label]['p99']:.0f} ms"
        for label in ("tier", "task")
    ]
    cores = result["cores"]
    return (
        "; ".join(parts)
        + f"; cores {sum(cores.values()):.2f} ("
        + " ".join(f"{n} {v:.2f}" for n, v in cores.items())
        + ")"
    )


def flatten(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """`{"tier": {"p50": 1.0}}` -> `{"tier p50": 1.0}`."""
    flat: dict[str, float] = {}
    for name, value in result.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{name} ")
        else:
            flat[f"{prefix}{name}"] = float(value)
    return flat


def ranges(results: list[dict[str, Any]]) -> str:
    """Each figure's lowest and highest over a side's runs."""
    flat = [flatten(r) for r in results]
    return "; ".join(
        f"{name} {_shown(min(f[name] for f in flat))}-{_shown(max(f[name] for f in flat))}" for name in flat[0]
    )


def _shown(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or value.is_integer() else f"{value:.3f}"


def measure_side(tree: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """Run one measurement in a child process importing the code of `tree` (this file runs as a
    script there: the base may predate it)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one", args.mode, "--scale", str(args.scale)]
    command += ["--rate", str(args.rate), "--probes", str(args.probes)]
    child_env = {**os.environ, "PYTHONPATH": str(tree), **env}
    done = subprocess.run(command, cwd=tree, env=child_env, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line.removeprefix(RESULT_PREFIX))
            return result
    raise RuntimeError(f"the run in {tree} gave no result:\n{done.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ab", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base", help="the version A runs (a git revision); default: the working tree, as B")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for B only")
    parser.add_argument("--mode", choices=("replay", "latency"), default="replay")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=0.02)
    parser.add_argument("--rate", type=int, default=1000, help="background events/s of the latency run")
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--one", choices=("replay", "latency"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(RESULT_PREFIX + json.dumps(run_one(args.one, args.scale, args.rate, args.probes)), flush=True)
        return 0
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    env_b = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="c360-ab-") as scratch:
        tree_a = ROOT
        if args.base:
            tree_a = Path(scratch) / "base"
            add = ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree_a), args.base]
            subprocess.run(add, check=True)
        try:
            results: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
            for round_ in range(1, args.rounds + 1):
                for side, tree, env in (("A", tree_a, {}), ("B", ROOT, env_b)):
                    result = measure_side(tree, env, args)
                    results[side].append(result)
                    print(f"round {round_} {side}: {summary(result)}", flush=True)
        finally:
            if args.base:
                remove = ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree_a)]
                subprocess.run(remove, check=False)
    labels = {"A": args.base or "the working tree", "B": "the working tree" + "".join(f" {e}" for e in args.env)}
    for side in ("A", "B"):
        print(f"{side}, {labels[side]}: {ranges(results[side])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
