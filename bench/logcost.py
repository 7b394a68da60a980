"""The cost of one info log line at taskhook's configuration (JSON, to stderr).

`python -m bench.logcost` logs a delivery line (the dispatcher's per-callback one, with its
fields) and a request line N times with stderr sent to /dev/null, and prints microseconds of
CPU per line, beside the cost of a line below the level (a no-op)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from taskhook.core.logs import configure_logging, get_logger

FIELDS = {
    "delivery_id": 123456,
    "task_id": "6f1c2a9e0b7d4c3a2e1f0a9b",
    "attempt": 1,
    "host": "callbacks.example.com",
    "webhook_id": "msg_2b9f0c1d4e5a6b7c8d9e0f1a",
    "status_code": 200,
    "error": None,
    "duration_ms": 3,
}


def per_line(n: int, level: str, event: str) -> float:
    log = get_logger("bench.logcost")
    emit = getattr(log, level)
    start = time.process_time()
    for _ in range(n):
        emit(event, **FIELDS)
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=50_000)
    args = parser.parse_args()
    real_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        configure_logging("json", "info")
        per_line(1000, "info", "warm")
        info = per_line(args.n, "info", "delivery.succeeded")
        debug = per_line(args.n, "debug", "delivery.attempted")
    finally:
        os.dup2(real_stderr, 2)
    print(
        f"info line (JSON, {len(FIELDS)} fields): {info:.1f} us CPU; "
        f"below the level: {debug:.2f} us  (n={args.n}, stderr to /dev/null)",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()
