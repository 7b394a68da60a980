"""The printed tables and the JSON file. Figures only: nothing here judges timings
except the `held` flags the end-to-end ladder computed (p99 < 100 ms, no growing backlog).
Ratios compare taskhook with the bare ceilings measured in the same run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Row = Sequence[object]


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def table(title: str, headers: Row, rows: list[Row]) -> str:
    cells = [[fmt(c) for c in headers]] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [title]
    for n, row in enumerate(cells):
        lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pct(part: float | None, whole: float | None) -> str | None:
    if not part or not whole:
        return None
    return f"{100 * part / whole:.0f} %"


def cores(cpu: dict[str, Any], *names: str, wall: float | None = None) -> float | None:
    wall = wall or cpu["wall_s"]
    seconds = [cpu["cpu_s"][n] for n in names if n in cpu["cpu_s"]]
    return round(sum(seconds) / wall, 2) if seconds and wall else None


def us_per_event(cpu: dict[str, Any], events: int, *names: str) -> float | None:
    seconds = [cpu["cpu_s"][n] for n in names if n in cpu["cpu_s"]]
    return round(sum(seconds) / events * 1e6) if seconds and events else None


# --- ceilings -------------------------------------------------------------------------


def ceiling_at(results: dict[str, Any], kind: str, concurrency: int | None = None) -> float | None:
    """A bare figure (events/s) at the highest measured concurrency <= `concurrency`;
    the best one if concurrency is None."""
    rows = results.get("ceilings", {}).get(kind, [])
    if concurrency is not None:
        rows = [r for r in rows if r["concurrency"] <= concurrency][-1:] or rows[:1]
    return max((r["events_per_s"] for r in rows), default=None)


def _ceilings(res: dict[str, Any]) -> str:
    names = {
        "http": "bare HTTP POST",
        "pg_single": "bare PG 1 event/tx",
        "pg_batch": "bare PG 100/tx",
    }
    rows = []
    for kind, label in names.items():
        for r in res.get(kind, []):
            c = r["cpu"]
            rows.append(
                [
                    label,
                    r["concurrency"],
                    r["events_per_s"],
                    r["p50_ms"],
                    r["p99_ms"],
                    cores(c, "loop", wall=r["elapsed_s"]),
                    cores(c, "world", wall=r["elapsed_s"]),
                    cores(c, "postgres", wall=r["elapsed_s"]),
                ]
            )
    headers = ["loop", "conc", "events/s", "p50 ms", "p99 ms", "loop cores", "world", "PG"]
    return table("Ceilings (bare loops, same sink, same PostgreSQL)", headers, rows)


# --- ingest and drain -----------------------------------------------------------------


def _ingest(results: dict[str, Any]) -> str:
    res, rows = results["ingest"], []
    for key in ("single", "batch"):
        for r in res.get(key, []):
            c, n = r["cpu"], r["events_applied"]
            http = ceiling_at(results, "http", r["concurrency"]) if key == "single" else None
            pg = ceiling_at(
                results, "pg_single" if key == "single" else "pg_batch", r["concurrency"]
            )
            rows.append(
                [
                    f"{r['batch']}/request",
                    r["concurrency"],
                    r["events_per_s"],
                    r["requests_per_s"],
                    r["p50_ms"],
                    r["p99_ms"],
                    sum(r["errors"].values()),
                    "yes" if r["ran_out_of_tasks"] else "",
                    cores(c, "receiver"),
                    cores(c, "postgres"),
                    us_per_event(c, n, "receiver"),
                    us_per_event(c, n, "postgres"),
                    pct(r["requests_per_s"], http),
                    pct(r["events_per_s"], pg),
                ]
            )
    headers = [
        "events",
        "conc",
        "events/s",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "ran out",
        "recv cores",
        "PG cores",
        "recv µs/ev",
        "PG µs/ev",
        "of bare HTTP",
        "of bare PG",
    ]
    check = res.get("check", {})
    tail = (
        f"\n  check: {check.get('tasks_completed')} tasks completed for "
        f"{check.get('events_applied')} events applied"
    ) + _creation(res)
    return (
        table(
            "Ingest (taskhook receiver alone, closed loop, acknowledgement latency)", headers, rows
        )
        + tail
    )


def _drain(results: dict[str, Any]) -> str:
    rows, tails = [], []
    for r in results["drain"]["runs"]:
        c, m, n = r["cpu"], r["rss"], r["callbacks"]
        growth = None if m["peak_mb"] is None else round(m["peak_mb"] - m["start_mb"], 1)
        rows.append(
            [
                r["n"],
                r["task_creation"]["tasks_per_s"],
                r["queueing"]["events_per_s"],
                n,
                r["callbacks_per_s_from_start"],
                r["callbacks_per_s_from_first"],
                r["first_callback_ms"],
                r["all_recorded_s"],
                f"{fmt(m['start_mb'])} / {fmt(m['peak_mb'])} / {fmt(m['end_mb'])}",
                growth,
                cores(c, "dispatcher"),
                cores(c, "postgres"),
                us_per_event(c, n, "dispatcher"),
                us_per_event(c, n, "postgres"),
                pct(r["callbacks_per_s_from_first"], ceiling_at(results, "http")),
            ]
        )
        check = r["check"]
        tails.append(
            f"\n  check {r['n']:,}: {check['succeeded']} of {r['n']} callback_succeeded, "
            f"{check['sink_duplicates']} duplicate callbacks, {check['tasks_with_2_deliveries']} "
            f"tasks with 2 deliveries -> {'OK' if check['ok'] else 'FAILED'}"
        )
    headers = [
        "queued",
        "made tasks/s",
        "queued ev/s",
        "delivered",
        "cb/s from start",
        "cb/s from 1st",
        "1st cb ms",
        "all recorded s",
        "RSS start/peak/end MB",
        "growth MB",
        "disp cores",
        "PG cores",
        "disp µs/cb",
        "PG µs/cb",
        "of bare HTTP",
    ]
    title = (
        "Drain (tasks made through the API and completed by signed 100-event POST /v1/events "
        "on `taskhook receiver` alone; then `taskhook dispatcher` alone on the backlog, the "
        "sink answering 200 at once; cb/s from the dispatcher's start (its start-up included) "
        "and from its first callback; RSS from the first callback)"
    )
    return table(title, headers, rows) + "".join(tails)


# --- end to end -----------------------------------------------------------------------


def _service_names(step: dict[str, Any]) -> tuple[list[str], list[str]]:
    names = [k for k in step["cpu"]["cpu_s"] if k not in ("postgres", "world", "machine")]
    receive = [k for k in names if not k.startswith("dispatcher")]
    return receive, [k for k in names if k.startswith("dispatcher")]


def _step_row(step: dict[str, Any]) -> list[object]:
    s, cw, c = step["all"], step["cpu_window"], step["cpu"]
    receive, dispatch = _service_names(step)
    service = fmt(cores(cw, *receive))
    if dispatch:  # scale-out: receivers + dispatchers
        service += "+" + fmt(cores(cw, *dispatch))
    n = s["delivered"]
    return [
        step["offered_per_s"],
        s["delivered_per_s"],
        f"{s['backlog_mid']} / {s['backlog_end']}",
        s["p50_ms"],
        s["p99_ms"],
        s.get("ack_p99_ms"),  # absent in results saved before it was measured
        s["missing_after_settle"],
        sum(step["errors"].values()),
        step["held"],
        step["generator_max_lateness_ms"],
        service,
        cores(cw, "postgres"),
        cores(cw, "world"),
        cores(cw, "machine"),
        us_per_event(c, n, *receive, *dispatch),
        us_per_event(c, n, "postgres"),
    ]


STEP_HEADERS = [
    "offered/s",
    "delivered/s",
    "backlog mid/end",
    "p50 ms",
    "p99 ms",
    "ack p99 ms",
    "missing",
    "errors",
    "held",
    "gen lag ms",
    "svc cores",
    "PG cores",
    "world cores",
    "machine",
    "svc µs/ev",
    "PG µs/ev",
]


def _ladder(results: dict[str, Any], key: str, title: str) -> str:
    r = results[key]
    text = table(title, STEP_HEADERS, [_step_row(s) for s in r["steps"]])
    head, check = r["headline_per_s"], r["check"]
    text += (
        f"\n  headline: {fmt(head)} events/s held (p99 < 100 ms, no growing backlog)"
        f"; {fmt(pct(head, ceiling_at(results, 'pg_single')))} of bare PG 1 event/tx"
        f", {fmt(pct(head, ceiling_at(results, 'http')))} of bare HTTP POST"
        f"\n  check: {check['succeeded']} of {check['acked_events']} acknowledged tasks have "
        f"callback_succeeded true, {check['unresolved']} unresolved, {check['failed']} false, "
        f"{check['sink_duplicates']} duplicate callbacks, {check['tasks_with_2_deliveries']} tasks "
        f"with 2 deliveries -> {'OK' if check['ok'] else 'FAILED'}"
    )
    if key == "scaleout" and results.get("e2e", {}).get("headline_per_s"):
        text += f"\n  2+2 processes vs one serve: {pct(head, results['e2e']['headline_per_s'])}"
    return text + _creation(r)


def _creation(r: dict[str, Any]) -> str:
    """The side figure: tasks made through the API before the timed windows."""
    made = r.get("task_creation")
    if not made or not made.get("tasks"):
        return ""
    return (
        f"\n  tasks made through POST /v1/task (outside the timed windows): {made['tasks']:,} "
        f"in {fmt(made['seconds'])} s = {fmt(made['tasks_per_s'])} tasks/s at concurrency "
        f"{made.get('concurrency', '?')}"
    )


def _sizes(sizes: dict[str, Any]) -> str:
    rows = [
        [
            name,
            s["total_mb"],
            s["heap_mb"],
            s["index_mb"],
            s["live_tuples"],
            s["dead_tuples"],
        ]
        for name, s in sizes.items()
    ]
    headers = ["table", "total MB", "heap MB", "indexes MB", "live tuples", "dead tuples"]
    return table("", headers, rows).lstrip("\n")


def _aged(results: dict[str, Any]) -> str:
    r = results["aged"]
    h = r["history"]
    stages = ", ".join(
        f"{k} {fmt(v['rows_per_busy_s'])} rows/s ({fmt(v['busy_s'])} busy s)"
        for k, v in h["stages"].items()
    )
    kept = r["history_kept"]
    text = (
        f"Aged database: {h['delivered']:,} finished deliveries made in {fmt(h['seconds'])} s "
        f"({fmt(h['per_s'])}/s; {h['workers']} pipelines of {h['chunk']:,}: {stages}), in-process "
        f"through taskhook's own functions (bench/history.py: {h['how']}); then VACUUM (ANALYZE) "
        f"once in {fmt(h['vacuum_analyze_s'])} s, standing in for the autovacuum of the weeks "
        f"such a history takes. Sizes at the start of the ladder:\n"
    )
    text += _sizes(r["sizes_at_start"])
    text += "\n\n" + _ladder(results, "aged", "End to end on the aged database (taskhook serve)")
    text += (
        f"\n  history kept (retention must not prune it): {kept['deliveries']:,} deliveries, "
        f"{kept['attempts']:,} attempts of {h['delivered']:,} -> "
        f"{'OK' if kept['ok'] else 'FAILED'}"
    )
    return text


def _window_p(w: dict[str, Any]) -> list[object]:
    a = w["all"]
    errors = sum(w["errors"].values()) + w["skipped_in_flight_cap"] + a["missing_after_settle"]
    return [a["p50_ms"], a["p99_ms"], a["delivered_per_s"], errors]


def _held(results: dict[str, Any]) -> str:
    r = results["held"]
    rows = []
    for w in r["windows"]:
        share = w["snapshot_share"]
        mark = "HELD" if share >= 0.99 else (f"part ({share:.0%})" if share >= 0.05 else "")
        dead = w["dead_tuples"]
        rows.append(
            [
                f"{fmt(w['began_s'])}-{fmt(w['began_s'] + r['window_s'])}",
                mark,
                *_window_p(w),
                w["all"]["backlog_end"],
                dead.get("deliveries"),
                dead.get("tasks"),
            ]
        )
    headers = [
        "window s",
        "snapshot",
        "p50 ms",
        "p99 ms",
        "delivered/s",
        "errors",
        "backlog end",
        "deliveries dead",
        "tasks dead",
    ]
    snap = r["snapshot"]
    title = (
        f"Held snapshot (taskhook serve, {r['rate']} events/s open loop; a separate connection "
        f"holds `{snap['sql']}` from {fmt(snap['held_s'][0])} s to {fmt(snap['held_s'][1])} s)"
    )
    check = r["check"]
    text = table(title, headers, rows) + (
        f"\n  check: {check['succeeded']} of {check['acked_events']} acknowledged tasks have "
        f"callback_succeeded true, {check['sink_duplicates']} duplicate callbacks, "
        f"{check['tasks_with_2_deliveries']} tasks with 2 deliveries -> "
        f"{'OK' if check['ok'] else 'FAILED'}"
    )
    return text + _window_creation(r)


def _window_creation(r: dict[str, Any]) -> str:
    made = r.get("task_creation") or {}
    total = made.get("total") or {}
    if not total.get("tasks"):
        return ""
    return (
        f"\n  tasks made through POST /v1/task: {total['tasks']:,} at "
        f"{fmt(total['tasks_per_s'])} tasks/s, {made['mode']}"
    )


_SHORT = {
    "tasks": "tasks",
    "deliveries": "deliv",
    "delivery_payloads": "payl",
    "delivery_attempts": "attm",
    "ingested_events": "events",
}


def _pg_did(pg: dict[str, Any] | None) -> list[object]:
    """A window's checkpoints, WAL, full-page images and autovacuum runs (tables)."""
    if not pg:
        return [None] * 4
    vacuumed = sorted(set(pg["autovacuums"]) | set(pg["vacuuming_at_end"]))
    short = ",".join(_SHORT.get(t, t) for t in vacuumed)
    return [pg["checkpoints"], pg["wal_mb"], pg["wal_fpi"], short or "-"]


def _tuning(m: dict[str, Any]) -> str:
    """The embedded server's settings as taskhook serve applies them (core/store/server.py)."""
    tuning = m.get("postgres_tuning")  # absent in results saved before it was applied
    if not tuning:
        return ""
    return "; " + ", ".join(f"{k}={v}" for k, v in tuning.items()) + " as taskhook serve sets"


def _soak(results: dict[str, Any]) -> str:
    r = results["soak"]
    rows = []
    for w in r["windows"]:
        rss, sizes = w["rss_mb"], w["sizes"]
        rows.append(
            [
                w["window"] + 1,
                *_window_p(w),
                w["waited_for_tasks_s"],
                cores(w["cpu"], "serve"),
                cores(w["cpu"], "postgres"),
                *_pg_did(w.get("pg")),  # absent in results saved before it was measured
                *(sizes.get(t, {}).get("total_mb") for t in SOAK_TABLES),
                *(sizes.get(t, {}).get("dead_tuples") for t in SOAK_TABLES),
                rss["serve"],
                rss["world"],
                rss["postmaster"],
                rss["backends"],
            ]
        )
    short = [_SHORT[t] for t in SOAK_TABLES]
    headers = [
        "min",
        "p50 ms",
        "p99 ms",
        "delivered/s",
        "errors",
        "waited s",
        "serve cores",
        "PG cores",
        "ckpt",
        "WAL MB",
        "FPI",
        "autovacuum",
        *(f"{s} MB" for s in short),
        *(f"{s} dead" for s in short),
        "serve MB",
        "world MB",
        "pm MB",
        "backends MB",
    ]
    title = (
        f"Soak (taskhook serve, {r['rate']} single-event requests/s for {r['minutes']} windows "
        f"of {fmt(r['window_s'])} s; table = total of heap, TOAST and indexes; RSS = VmRSS)"
    )
    check = r["check"]
    text = table(title, headers, rows)
    last = r["windows"][-1]["sizes"] if r["windows"] else {}
    if last:
        text += "\n  sizes at the end:\n" + _sizes(last)
    text += (
        f"\n  check: {check['succeeded']} of {check['acked_events']} acknowledged tasks have "
        f"callback_succeeded true, {check['sink_duplicates']} duplicate callbacks, "
        f"{check['tasks_with_2_deliveries']} tasks with 2 deliveries -> "
        f"{'OK' if check['ok'] else 'FAILED'}"
    )
    return text + _window_creation(r)


SOAK_TABLES = ("tasks", "deliveries", "delivery_payloads", "delivery_attempts", "ingested_events")


def _neighbour(results: dict[str, Any]) -> str:
    r = results["neighbour"]
    rows = []
    for label, step in (("all healthy", r["baseline"]), ("10 % hang, 10 % 500", r["bad"])):
        h = step["healthy"]
        rows.append(
            [
                label,
                step["offered_per_s"],
                h["events"],
                h["delivered_per_s"],
                h["p50_ms"],
                h["p99_ms"],
                h["missing_after_settle"],
                h["backlog_end"],
            ]
        )
    headers = [
        "run",
        "offered/s",
        "healthy events",
        "healthy delivered/s",
        "p50 ms",
        "p99 ms",
        "missing",
        "backlog end",
    ]
    text = table(
        "Bad neighbour (taskhook serve; the same healthy 80 % in both runs)", headers, rows
    )
    bad = r["bad_requests"]
    text += (
        f"\n  healthy throughput kept: {r['kept_throughput'] * 100:.0f} %; bad-host requests: "
        f"{bad.get('requests_hang', 0)} hung, {bad.get('requests_fail', 0)} answered 500; "
        f"check -> {'OK' if r['check']['ok'] else 'FAILED'}"
    )
    return text + _creation(r)


def _cpu_per_event(results: dict[str, Any]) -> str | None:
    rows = []
    for key in ("e2e", "scaleout", "aged"):
        steps = results.get(key, {}).get("steps") or []
        if not steps:
            continue
        held = [s for s in steps if s["held"]]
        step = held[-1] if held else steps[0]
        c, n = step["cpu"], step["all"]["delivered"]
        for name in c["cpu_s"]:
            if name != "machine":
                rows.append(
                    [
                        key,
                        step["offered_per_s"],
                        name,
                        cores(step["cpu_window"], name),
                        us_per_event(c, n, name),
                    ]
                )
        rows.append(
            [
                key,
                step["offered_per_s"],
                "whole machine",
                cores(step["cpu_window"], "machine"),
                us_per_event(c, n, "machine"),
            ]
        )
    if not rows:
        return None
    headers = ["scenario", "at rate/s", "process", "cores", "CPU µs per event"]
    return table("CPU cost per event end to end (highest held rate)", headers, rows)


def render(doc: dict[str, Any]) -> str:
    results = doc["results"]
    m = doc["machine"]
    parts = [
        f"taskhook bench {doc['started_at']} ({'quick' if doc['plan']['quick'] else 'full'} run, "
        f"{doc['elapsed_s']:.0f} s): {m['cpus']} x {m['cpu_model']}, {m['memory_gb']} GB, "
        f"PostgreSQL {m['postgres']} embedded (durable commits{_tuning(m)}), Python {m['python']}, "
        f"taskhook {m['taskhook']} at {m['commit']}"
    ]
    changed = doc.get("changed_settings") or {}
    if changed:
        parts.append(
            "settings changed from the defaults (all others, logs at info included, are "
            "the defaults): " + "; ".join(f"{k}={v} ({why})" for k, (v, why) in changed.items())
        )
    load = doc.get("loadavg_at_start") or [0.0]
    if load[0] > 0.5:
        parts.append(f"note: load average {load[0]:.2f} at start: something else was using the CPU")
    sections = [
        ("ceilings", lambda: _ceilings(results["ceilings"])),
        ("ingest", lambda: _ingest(results)),
        ("drain", lambda: _drain(results)),
        ("e2e", lambda: _ladder(results, "e2e", "End to end, open loop (taskhook serve)")),
        ("held", lambda: _held(results)),
        ("neighbour", lambda: _neighbour(results)),
        (
            "scaleout",
            lambda: _ladder(
                results, "scaleout", "Scale-out, open loop (2 receivers + 2 dispatchers)"
            ),
        ),
        ("aged", lambda: _aged(results)),
        ("soak", lambda: _soak(results)),
    ]
    for key, render_one in sections:
        if key not in results:
            continue
        if "error" in results[key]:
            parts.append(f"{key}: FAILED: {results[key]['error']}")
            continue
        try:
            parts.append(render_one())
        except (
            KeyError,
            TypeError,
            ValueError,
            ZeroDivisionError,
        ) as exc:  # figures are in the JSON
            parts.append(f"{key}: could not print ({type(exc).__name__}: {exc}); see the JSON")
    if per_event := _cpu_per_event({k: v for k, v in results.items() if "error" not in v}):
        parts.append(per_event)
    return "\n\n".join(parts)


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
