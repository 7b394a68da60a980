"""Scenario names, in run order (ceilings first: the later ones are printed as ratios).
The soak runs only when named (--scenarios soak): it takes half an hour by itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bench.scenarios import Context, aged, ceilings, drain, e2e, held, ingest, neighbour, soak

Scenario = Callable[[Context], Awaitable[dict[str, Any]]]
SCENARIOS: dict[str, Scenario] = {
    "ceilings": ceilings.run,
    "ingest": ingest.run,
    "drain": drain.run,
    "e2e": e2e.run,
    "held": held.run,
    "neighbour": neighbour.run,
    "scaleout": e2e.run_scaleout,
    "aged": aged.run,
    "soak": soak.run,
}
DEFAULT_ORDER = [name for name in SCENARIOS if name != "soak"]
