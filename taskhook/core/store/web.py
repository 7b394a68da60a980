"""Data access of the Tasks tab: named queries of queries.sql (the `web_` section), as in
taskhook/core/store/__init__.py, which the pages also use for what the API already does."""

from __future__ import annotations

from datetime import datetime

from taskhook.core.principal import Principal
from taskhook.core.store import Conn, Row
from taskhook.core.store.queries import queries

Cursor = tuple[datetime, str] | None


def _who(p: Principal) -> tuple[str, bool]:
    return p.account_id, p.is_test


async def insert_session(
    conn: Conn, token_hash: bytes, key_hash: bytes, ttl_seconds: float
) -> Row | None:
    """None: the key is not a valid key."""
    return await conn.fetchrow(queries["web_insert_session"], token_hash, key_hash, ttl_seconds)


async def session_principal(conn: Conn, token_hash: bytes) -> Principal | None:
    row = await conn.fetchrow(queries["web_session"], token_hash)
    if row is None:
        return None
    return Principal(row["account_id"], row["name"], row["is_test"], row["default_callback_url"])


async def delete_session(conn: Conn, token_hash: bytes) -> None:
    await conn.execute(queries["web_delete_session"], token_hash)


async def batch_names(conn: Conn, p: Principal) -> list[str]:
    return [r["name"] for r in await conn.fetch(queries["web_batch_names"], *_who(p))]
