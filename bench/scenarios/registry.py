"""Scenario names, in run order (ceilings first: the later ones are printed as ratios)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bench.scenarios import Context, ceilings, drain, e2e, ingest, neighbour

Scenario = Callable[[Context], Awaitable[dict[str, Any]]]
SCENARIOS: dict[str, Scenario] = {
    "ceilings": ceilings.run,
    "ingest": ingest.run,
    "drain": drain.run,
    "e2e": e2e.run,
    "neighbour": neighbour.run,
    "scaleout": e2e.run_scaleout,
}
