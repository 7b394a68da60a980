"""Named SQL queries, parsed once from queries.sql (`-- name: <name>` headers)."""

from __future__ import annotations

import re
from pathlib import Path

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def _load(path: Path) -> dict[str, str]:
    text = path.read_text()
    parts = _HEADER.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    named = dict(zip(parts[1::2], parts[2::2], strict=True))
    return {name: body.strip() for name, body in named.items()}


queries: dict[str, str] = _load(Path(__file__).with_name("queries.sql"))
