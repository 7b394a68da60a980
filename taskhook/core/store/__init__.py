"""Data access: the only module that runs SQL. Every query comes from queries.sql by name."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from taskhook.core.delivery import AttemptResult, Claimed
from taskhook.core.errors import Conflict
from taskhook.core.principal import Principal
from taskhook.core.store.queries import queries

# A connection opened directly, or one the pool lends: the same methods to this code.
Connection = asyncpg.Connection | PoolConnectionProxy
Conn = Connection | asyncpg.Pool
Row = asyncpg.Record
# What the serializers read: a row, or a dict of the same columns.
RowLike = Row | Mapping[str, Any]


@contextlib.asynccontextmanager
async def _custom_plans(conn: Conn) -> AsyncIterator[Connection]:
    """A transaction whose statements are planned for their actual parameters, for filter
    queries (`$n IS NULL OR col = $n`). Sessions let PostgreSQL reuse generic plans, which
    spares the hot paths (ingest, claims, outcomes) planning their statements anew each
    time; but a generic plan of a filter query cannot use the index of the filter given."""
    async with contextlib.AsyncExitStack() as stack:
        if isinstance(conn, asyncpg.Pool):
            conn = await stack.enter_async_context(conn.acquire())
        await stack.enter_async_context(conn.transaction())
        await conn.execute(queries["custom_plans"])
        yield conn


async def fetch_filtered(conn: Conn, query: str, *args: Any) -> list[Row]:
    async with _custom_plans(conn) as c:
        return await c.fetch(query, *args)


async def fetchrow_filtered(conn: Conn, query: str, *args: Any) -> Row | None:
    async with _custom_plans(conn) as c:
        return await c.fetchrow(query, *args)


async def fetchval_filtered(conn: Conn, query: str, *args: Any) -> Any:
    async with _custom_plans(conn) as c:
        return await c.fetchval(query, *args)


@contextlib.asynccontextmanager
async def generic_plans_transaction(conn: Connection) -> AsyncIterator[None]:
    """A transaction whose statements reuse one generic plan each, for the batch statements
    of ingest (arrays unnested into rows). Under `auto`, a batch of one or two rows keeps
    its custom plan cheaper than the generic one's estimate (ten rows per array), so at low
    rates every group would be planned anew, a large share of PostgreSQL's CPU.
    asyncpg's transaction() cannot carry the SET, and a SET of its own costs a round trip.
    Inside, conn.transaction() raises (asyncpg refuses it in a manual transaction) rather
    than commit early; on a failure the transaction is rolled back, or by the pool on
    release if the connection cannot take the ROLLBACK."""
    await conn.execute(queries["begin_generic_plans"])
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.execute(queries["rollback"])
        raise
    await conn.execute(queries["commit"])


@dataclass(frozen=True, slots=True)
class TaskFilters:
    """Filters of GET /v1/tasks; None means 'not filtered'."""

    project: str | None = None
    batch: str | None = None
    statuses: list[str] | None = None
    type: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    completed_after: datetime | None = None
    completed_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    review_statuses: list[str] | None = None
    unique_ids: list[str] | None = None
    tags: list[str] | None = None
    # Only the Tasks tab filters on these: Queued (False) / In Progress (True), and Redo.
    work_started: bool | None = None
    redone: bool | None = None

    def args(self) -> tuple[Any, ...]:
        return (
            self.project,
            self.batch,
            self.statuses,
            self.type,
            self.created_after,
            self.created_before,
            self.completed_after,
            self.completed_before,
            self.updated_after,
            self.updated_before,
            self.review_statuses,
            self.unique_ids,
            self.tags,
            self.work_started,
            self.redone,
        )


def _who(p: Principal) -> tuple[str, bool]:
    return p.account_id, p.is_test


async def ping(conn: Conn) -> None:
    await conn.fetchval(queries["ping"])


async def count_accounts(conn: Conn) -> int:
    return int(await conn.fetchval(queries["count_accounts"]))


async def insert_account(
    conn: Connection, account_id: str, name: str, auth_key_enc: bytes, secret_enc: bytes
) -> None:
    await conn.execute(queries["insert_account"], account_id, name, auth_key_enc, secret_enc)


async def insert_api_key(
    conn: Connection, key_hash: bytes, account_id: str, is_test: bool, prefix: str
) -> None:
    await conn.execute(queries["insert_api_key"], key_hash, account_id, is_test, prefix)


async def list_accounts(conn: Conn) -> list[Row]:
    """One row per key (or one for an account without keys), oldest account first."""
    return await conn.fetch(queries["list_accounts"])


async def lock_account(conn: Connection, account_id: str) -> Row | None:
    """The account's id and name, locked for the caller's transaction; None: no such one."""
    return await conn.fetchrow(queries["lock_account"], account_id)


async def revoke_other_api_keys(conn: Connection, account_id: str, kept: list[bytes]) -> list[str]:
    """Revoke the account's unrevoked keys but `kept` (digests); their prefixes."""
    rows = await conn.fetch(queries["revoke_other_api_keys"], account_id, kept)
    return [r["key_prefix"] for r in rows]


async def authenticate(conn: Conn, key_hash: bytes) -> Row | None:
    return await conn.fetchrow(queries["authenticate"], key_hash)


async def claim_secret_key_check(conn: Conn, check: bytes) -> bytes:
    return bytes(await conn.fetchval(queries["claim_secret_key_check"], check))


async def plaintext_secrets(conn: Connection) -> list[Row] | None:
    """The accounts' plaintext secrets of a database from before secrets were encrypted;
    None when the plaintext columns are gone."""
    if not await conn.fetchval(queries["has_plaintext_secrets"]):
        return None
    return list(await conn.fetch(queries["plaintext_secrets"]))


async def store_encrypted_secrets(
    conn: Connection, account_id: str, auth_key_enc: bytes, signing_secret_enc: bytes
) -> None:
    await conn.execute(
        queries["store_encrypted_secrets"], account_id, auth_key_enc, signing_secret_enc
    )


async def drop_plaintext_secrets(conn: Connection) -> None:
    await conn.execute(queries["drop_plaintext_secrets"])


async def rotate_signing_secret(
    conn: Conn, account_id: str, new_secret_enc: bytes, grace_seconds: float
) -> Row | None:
    """None: no such account. old_secret_until: until when the previous secret still
    signs (None: no grace period)."""
    return await conn.fetchrow(
        queries["rotate_signing_secret"], account_id, new_secret_enc, grace_seconds
    )


async def token_key(conn: Conn) -> bytes:
    key = await conn.fetchval(queries["server_token_key"])
    return bytes(key)


# --- projects -------------------------------------------------------------------------


async def insert_project(
    conn: Conn,
    p: Principal,
    name: str,
    type_: str,
    param_history: list[dict[str, Any]],
    rapid: bool,
    studio: bool,
    dataset_id: str | None,
) -> Row:
    row = await conn.fetchrow(
        queries["insert_project"], *_who(p), name, type_, param_history, rapid, studio, dataset_id
    )
    if row is None:
        raise Conflict(f"A project named '{name}' already exists.")
    return row


async def get_project(conn: Conn, p: Principal, name: str) -> Row | None:
    return await conn.fetchrow(queries["get_project"], *_who(p), name)


async def list_projects(conn: Conn, p: Principal) -> list[Row]:
    return await conn.fetch(queries["list_projects"], *_who(p))


async def append_project_params(
    conn: Conn, p: Principal, name: str, params: dict[str, Any]
) -> Row | None:
    return await conn.fetchrow(queries["append_project_params"], *_who(p), name, params)


# --- batches --------------------------------------------------------------------------


async def insert_batch(
    conn: Conn,
    p: Principal,
    project_id: int,
    name: str,
    status: str,
    callback: str,
    calibration: bool,
    self_label: bool,
    metadata: dict[str, Any],
) -> None:
    batch_id = await conn.fetchval(
        queries["insert_batch"],
        *_who(p),
        project_id,
        name,
        status,
        callback,
        calibration,
        self_label,
        metadata,
    )
    if batch_id is None:
        raise Conflict(f"A batch named '{name}' already exists.")


async def get_batch(conn: Conn, p: Principal, name: str) -> Row | None:
    return await conn.fetchrow(queries["get_batch"], *_who(p), name)


async def batch_task_counts(conn: Conn, p: Principal, name: str) -> dict[str, int]:
    rows = await conn.fetch(queries["batch_task_counts"], *_who(p), name)
    return {row["status"]: row["n"] for row in rows}


async def list_batches(
    conn: Conn,
    p: Principal,
    *,
    project: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[Row]:
    return await fetch_filtered(
        conn,
        queries["list_batches"],
        *_who(p),
        project,
        created_after,
        created_before,
        status,
        limit,
        offset,
    )


async def finalize_batch(conn: Conn, p: Principal, name: str) -> bool:
    return await conn.fetchval(queries["finalize_batch"], *_who(p), name) is not None


async def set_batch_metadata(conn: Conn, p: Principal, name: str, metadata: dict[str, Any]) -> bool:
    return await conn.fetchval(queries["set_batch_metadata"], *_who(p), name, metadata) is not None


# --- tasks ----------------------------------------------------------------------------


def unique_id_conflict(unique_id: str, task_id: str) -> Conflict:
    """Scale's exact 409 text; client scripts parse the id out of the parentheses."""
    return Conflict(
        f'The unique_id ("{unique_id}") is already used for a different task ({task_id}).'
    )


async def _raise_unique_id_conflict(conn: Conn, p: Principal, unique_id: str) -> None:
    other = await conn.fetchval(queries["task_id_by_unique_id"], *_who(p), unique_id)
    raise unique_id_conflict(unique_id, other or "unknown")


async def insert_task(conn: Connection, p: Principal, values: dict[str, Any]) -> Row:
    """Insert a task; a taken unique_id becomes Scale's 409 (savepoint keeps the tx usable)."""
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                queries["insert_task"],
                values["id"],
                *_who(p),
                values["type"],
                values["status"],
                values["project"],
                values["batch"],
                values["instruction"],
                values["callback_url"],
                values["params"],
                values["response"],
                values["metadata"],
                values["tags"],
                values["unique_id"],
                values["clear_unique_id_on_error"],
                values["priority"],
                values["project_param_version"],
                values["customer_review_status"],
            )
    except asyncpg.UniqueViolationError:
        await _raise_unique_id_conflict(conn, p, values["unique_id"])
    assert row is not None
    return row


async def get_task(conn: Conn, p: Principal, task_id: str) -> Row | None:
    return await conn.fetchrow(queries["get_task"], *_who(p), task_id)


async def lock_task(conn: Connection, p: Principal, task_id: str) -> Row | None:
    return await conn.fetchrow(queries["lock_task"], *_who(p), task_id)


async def list_tasks(
    conn: Conn, p: Principal, filters: TaskFilters, after: tuple[datetime, str] | None, limit: int
) -> list[Row]:
    cursor_at, cursor_id = after if after else (None, None)
    return await fetch_filtered(
        conn, queries["list_tasks"], *_who(p), *filters.args(), cursor_at, cursor_id, limit
    )


async def count_tasks(conn: Conn, p: Principal, filters: TaskFilters) -> int:
    return int(await fetchval_filtered(conn, queries["count_tasks"], *_who(p), *filters.args()))


async def cancel_task(conn: Conn, p: Principal, task_id: str, clear_unique_id: bool) -> Row:
    row = await conn.fetchrow(queries["cancel_task"], *_who(p), task_id, clear_unique_id)
    assert row is not None
    return row


async def set_unique_id(
    conn: Connection, p: Principal, task_id: str, unique_id: str | None
) -> Row | None:
    try:
        async with conn.transaction():
            return await conn.fetchrow(queries["set_unique_id"], *_who(p), task_id, unique_id)
    except asyncpg.UniqueViolationError:
        assert unique_id is not None
        await _raise_unique_id_conflict(conn, p, unique_id)
        raise  # unreachable: the line above always raises


async def set_metadata(
    conn: Conn, p: Principal, task_id: str, metadata: dict[str, Any]
) -> Row | None:
    return await conn.fetchrow(queries["set_metadata"], *_who(p), task_id, metadata)


async def set_tags(conn: Conn, p: Principal, task_id: str, tags: list[str]) -> Row | None:
    return await conn.fetchrow(queries["set_tags"], *_who(p), task_id, tags)


async def record_audit(
    conn: Conn,
    p: Principal,
    task_id: str,
    review_status: str,
    comment: str | None,
    audit: dict[str, Any],
) -> Row | None:
    return await conn.fetchrow(
        queries["record_audit"], *_who(p), task_id, review_status, comment, audit
    )


# --- idempotency keys ----------------------------------------------------------------


async def idempotency_claim(
    conn: Conn, p: Principal, key: str, request_hash: bytes, lock_seconds: float
) -> Row | None:
    return await conn.fetchrow(
        queries["idempotency_claim"], *_who(p), key, request_hash, lock_seconds
    )


async def idempotency_complete(conn: Conn, p: Principal, key: str, status: int, body: str) -> None:
    await conn.execute(queries["idempotency_complete"], *_who(p), key, status, body)


async def idempotency_release(conn: Conn, p: Principal, key: str) -> None:
    await conn.execute(queries["idempotency_release"], *_who(p), key)


# --- event ingest --------------------------------------------------------------------


async def lock_tasks_and_claim_events(
    conn: Conn, task_ids: list[str], events: list[tuple[str, str, str]]
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Lock the tasks (in id order) and claim the events' ids, (event_id, task_id, type),
    in one round trip: the tasks by id, and the event ids not seen before."""
    ids, event_task_ids, types = (list(column) for column in zip(*events, strict=True))
    rows = await conn.fetch(
        queries["lock_tasks_and_claim_events"], task_ids, ids, event_task_ids, types
    )
    tasks = {r["id"]: dict(r) for r in rows if r["id"] is not None}
    return tasks, {r["event_id"] for r in rows if r["event_id"] is not None}


async def forget_event_ids(conn: Conn, event_ids: list[str]) -> None:
    await conn.execute(queries["forget_event_ids"], event_ids)


async def _changed(conn: Conn, name: str, *args: Any) -> Row:
    row = await conn.fetchrow(queries[name], *args)
    assert row is not None, f"{name}: the locked task vanished"
    return row


async def mark_started(conn: Conn, task_id: str) -> Row:
    return await _changed(conn, "mark_started", task_id)


async def mark_completed(conn: Conn, task_id: str, response: Any, at: datetime) -> Row:
    return await _changed(conn, "mark_completed", task_id, response, at)


async def complete_tasks(
    conn: Conn, ids: list[str], responses: list[str], ats: list[datetime], calls_back: list[bool]
) -> dict[str, Row]:
    """mark_completed for many distinct tasks (responses as JSON text), by task id."""
    rows = await conn.fetch(queries["complete_tasks"], ids, responses, ats, calls_back)
    assert len(rows) == len(ids), "complete_tasks: a locked task vanished"
    return {r["id"]: r for r in rows}


async def mark_errored(conn: Conn, task_id: str, response: Any) -> Row:
    return await _changed(conn, "mark_errored", task_id, response)


async def mark_recalled(conn: Conn, task_id: str) -> Row:
    return await _changed(conn, "mark_recalled", task_id)


async def mark_fixed(
    conn: Conn,
    task_id: str,
    response: Any,
    comment: str | None,
    audit: dict[str, Any],
) -> Row:
    return await _changed(conn, "mark_fixed", task_id, response, comment, audit)


# --- deliveries ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """One callback to enqueue; the payload is JSON text (built and encoded once)."""

    task_id: str
    account_id: str
    trigger: str
    target: str
    host: str
    payload: str
    webhook_id: str


async def enqueue_deliveries(conn: Conn, new: list[NewDelivery]) -> list[int]:
    """Enqueue in input order; a task's later delivery here waits for its earlier one.
    The dispatchers are notified when the transaction commits."""
    if not new:
        return []
    seen: set[str] = set()
    after_first = []
    for n in new:
        after_first.append(n.task_id in seen)
        seen.add(n.task_id)
    rows = await conn.fetch(
        queries["enqueue_deliveries"],
        [n.task_id for n in new],
        [n.account_id for n in new],
        [n.trigger for n in new],
        [n.target for n in new],
        [n.host for n in new],
        [n.payload for n in new],
        [n.webhook_id for n in new],
        after_first,
    )
    return [r["id"] for r in rows]


@dataclass
class ClaimWindow:
    """Where a dispatcher's claims start scanning (queries.sql, claim_deliveries): from
    `marks[host]` for a host an earlier claim left rows of due, from `low` for every other
    host; `horizon` is the bound the next claim's marks may not pass. None is -infinity:
    scan everything. `lowered` holds what a sweep found behind the marks, until a claim
    sent after it has come back."""

    low: datetime | None = None
    horizon: datetime | None = None
    marks: dict[str, datetime | None] = field(default_factory=dict)
    lowered: dict[str, datetime] = field(default_factory=dict)
    sweeps: int = 0  # sweeps that lowered a mark so far

    def reset(self) -> None:
        """Scan everything next time: after a failed claim, since a claim rolled back
        leaves its rows due at their old times."""
        self.low = self.horizon = None
        self.marks, self.lowered = {}, {}

    def lower(self, due: dict[str, datetime]) -> None:
        """Scan these hosts from these times (a sweep's finds), as well as from their marks."""
        behind = {h: at for h, at in due.items() if _before(at, self.start(h))}
        for host, at in behind.items():
            self.lowered[host] = min(at, self.lowered.get(host, at))
        if behind:
            self.sweeps += 1

    def start(self, host: str) -> datetime | None:
        """Where the next claim scans `host` from."""
        mark = self.marks.get(host, self.low)
        found = self.lowered.get(host)
        return found if found is not None and _before(found, mark) else mark

    def sent_marks(self) -> dict[str, datetime | None]:
        """The per-host marks a claim sends: its own, and the sweep's finds."""
        return {**self.marks, **{h: self.start(h) for h in self.lowered}}

    def update(self, sent_sweeps: int, horizon: datetime | None, row: Any) -> None:
        """Move to the marks a claim returned; `horizon` and `sent_sweeps` as it was sent."""
        self.low, self.horizon = horizon, row["claim_horizon"]
        self.marks = dict(zip(row["claim_hosts"] or [], row["claim_marks"] or [], strict=True))
        if sent_sweeps == self.sweeps:  # the claim scanned from everything swept so far
            self.lowered = {}


def _before(at: datetime, mark: datetime | None) -> bool:
    return mark is not None and at < mark


async def due_hosts(conn: Conn) -> dict[str, datetime]:
    """Each host with a due row, and its earliest due row (the claim window's sweep)."""
    rows = await conn.fetch(queries["due_hosts"])
    return {r["host"]: r["due"] for r in rows if r["due"] is not None}


async def claim_deliveries(
    conn: Conn,
    limit: int,
    lease_seconds: float,
    per_host: int,
    busy: dict[str, int] | None = None,
    unlisted: int = 0,
    window: ClaimWindow | None = None,
) -> list[Row]:
    """Up to `limit` due deliveries, at most `per_host` less `busy[host]` for each host
    (less `unlisted` for a host not in `busy`), with their account's secrets still sealed.
    One statement, one round trip; the dispatcher runs it on a connection with
    db.CLAIM_SETTINGS (its plan depends on them). With a `window`, the scan starts at its
    low mark, and the window moves to the marks the claim returns."""
    busy = busy or {}
    window = window or ClaimWindow()
    horizon, sweeps, marks = window.horizon, window.sweeps, window.sent_marks()
    rows = await conn.fetch(
        queries["claim_deliveries"],
        limit,
        lease_seconds,
        per_host,
        list(busy),
        list(busy.values()),
        unlisted,
        window.low,
        horizon,
        list(marks),
        list(marks.values()),
    )
    if rows:  # a claim that took nothing leaves the window as it was, still true
        window.update(sweeps, horizon, rows[0])
    return rows


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt to record, and the delivery state it leads to."""

    delivery: Claimed
    state: str  # pending (retry later), succeeded, failed
    delay: float | None  # seconds until the next attempt, when state is pending
    result: AttemptResult


async def record_attempts(pool: asyncpg.Pool, records: list[AttemptRecord]) -> set[int]:
    """Write attempts and next states; returns the delivery ids whose lease still held (the
    others were taken over and wrote nothing). One statement: the function it calls locks
    the tasks first, then writes (schema.sql, taskhook_record_attempts)."""
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [], [])
    for r in records:
        o = r.result.outcome
        values = (
            r.delivery.id,
            r.delivery.lease_token,
            r.state,
            r.delay,
            r.result.started_at,
            r.result.duration_ms,
            o.status_code,
            o.error,
            r.result.excerpt,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    task_ids = sorted({r.delivery.task_id for r in records if r.delivery.task_id is not None})
    rows = await pool.fetch(queries["record_attempts"], task_ids, *columns)
    return {row["id"] for row in rows}


async def record_attempt(
    conn: asyncpg.Pool, d: Claimed, state: str, delay: float | None, result: AttemptResult
) -> bool:
    """One attempt; False if the lease was lost."""
    return d.id in await record_attempts(conn, [AttemptRecord(d, state, delay, result)])


async def release_deliveries(conn: Conn, rows: list[Claimed]) -> None:
    await conn.execute(
        queries["release_deliveries"], [d.id for d in rows], [d.lease_token for d in rows]
    )


async def pause_host(conn: Conn, host: str, seconds: float) -> None:
    await conn.execute(queries["pause_host"], host, seconds)


async def task_deliveries(conn: Conn, task_id: str) -> list[Row]:
    return await conn.fetch(queries["task_deliveries"], task_id)


async def latest_delivery_payload(conn: Conn, task_id: str) -> str | None:
    """The JSON text of the task's latest callback, exactly as it was sent."""
    payload: str | None = await conn.fetchval(queries["latest_delivery_payload"], task_id)
    return payload


async def queue_stats(conn: Conn) -> Row:
    row = await conn.fetchrow(queries["queue_stats"])
    assert row is not None
    return row


# Rows deleted per statement, and statements per prune: short transactions, so a prune
# neither holds back vacuum nor locks much at once; what is left goes at the next prune.
PRUNE_BATCH = 5000
PRUNE_BATCHES = 200


async def prune(conn: Conn, retention_days: int) -> None:
    """Retention: idempotency keys after 24 h, history after retention_days;
    expired Tasks tab sessions."""
    await conn.execute(queries["prune_idempotency_keys"])
    await conn.execute(queries["prune_web_sessions"])
    for name in ("prune_finished_deliveries", "prune_ingested_events"):
        for _ in range(PRUNE_BATCHES):
            status = await conn.execute(queries[name], retention_days, PRUNE_BATCH)
            if int(status.split()[-1]) < PRUNE_BATCH:
                break


# --- files ---------------------------------------------------------------------------


async def insert_file(conn: Conn, p: Principal, fields: dict[str, Any]) -> Row:
    """fields: id, token, display_name, project_name, reference_id, metadata, mimetype,
    size, sha256, source_url."""
    row = await conn.fetchrow(
        queries["insert_file"],
        *_who(p),
        *(fields[k] for k in _FILE_FIELDS),
    )
    if row is None:
        raise Conflict(f"A file with reference_id '{fields['reference_id']}' already exists.")
    return row


_FILE_FIELDS = (
    "id",
    "token",
    "display_name",
    "project_name",
    "reference_id",
    "metadata",
    "mimetype",
    "size",
    "sha256",
    "source_url",
)


async def get_file(conn: Conn, p: Principal, file_id: str) -> Row | None:
    return await conn.fetchrow(queries["get_file"], *_who(p), file_id)


async def get_file_content(conn: Conn, file_id: str) -> Row | None:
    return await conn.fetchrow(queries["get_file_content"], file_id)


# --- teams ---------------------------------------------------------------------------


async def list_teammates(conn: Conn, account_id: str) -> list[Row]:
    return await conn.fetch(queries["list_teammates"], account_id)


async def invite_teammates(
    conn: Conn, account_id: str, emails: list[str], role: str, ids: list[str]
) -> None:
    await conn.execute(queries["invite_teammates"], account_id, emails, role, ids)


async def set_teammates_role(conn: Conn, account_id: str, emails: list[str], role: str) -> set[str]:
    """The e-mails changed; the caller's transaction rolls back if some are unknown."""
    rows = await conn.fetch(queries["set_teammates_role"], account_id, emails, role)
    return {r["email"] for r in rows}


# --- batch callbacks -------------------------------------------------------------------


async def due_batch_callbacks(conn: Conn, limit: int) -> list[Row]:
    """Completed batches whose callback is now marked queued (the caller's transaction)."""
    return await conn.fetch(queries["due_batch_callbacks"], limit)


async def enqueue_batch_delivery(
    conn: Conn,
    *,
    batch_id: int,
    account_id: str,
    target: str,
    host: str,
    webhook_id: str,
    payload: str,
) -> int:
    delivery_id = await conn.fetchval(
        queries["enqueue_batch_delivery"], batch_id, account_id, target, host, webhook_id, payload
    )
    return int(delivery_id)


async def batch_deliveries(conn: Conn, batch_id: int) -> list[Row]:
    return await conn.fetch(queries["batch_deliveries"], batch_id)


# --- evaluation and training tasks ----------------------------------------------------


async def insert_quality_task(conn: Conn, p: Principal, fields: dict[str, Any]) -> Row:
    """fields: id, kind, type, project_id, instruction, params, expected_response,
    initial_response, metadata."""
    row = await conn.fetchrow(
        queries["insert_quality_task"], *_who(p), *(fields[k] for k in _QUALITY_FIELDS)
    )
    assert row is not None
    return row


_QUALITY_FIELDS = (
    "id",
    "kind",
    "type",
    "project_id",
    "instruction",
    "params",
    "expected_response",
    "initial_response",
    "metadata",
)


async def list_quality_tasks(conn: Conn, project_id: int, kind: str) -> list[Row]:
    return await conn.fetch(queries["list_quality_tasks"], project_id, kind)


# --- studio --------------------------------------------------------------------------


async def studio_teammates(conn: Conn, account_id: str, emails: list[str]) -> dict[str, str]:
    """e-mail -> teammate id, for those of `emails` on the team."""
    rows = await conn.fetch(queries["studio_teammates"], account_id, emails)
    return {r["email"]: r["id"] for r in rows}


async def studio_projects(conn: Conn, p: Principal, names: list[str]) -> dict[str, int]:
    """name -> project id, for those of `names` in the caller's world."""
    rows = await conn.fetch(queries["studio_projects"], *_who(p), names)
    return {r["name"]: r["id"] for r in rows}


async def studio_assignments(conn: Conn, p: Principal) -> list[Row]:
    return await conn.fetch(queries["studio_assignments"], *_who(p))


async def studio_assign(conn: Conn, projects: list[int], teammates: list[str]) -> None:
    await conn.execute(queries["studio_assign"], projects, teammates)


async def studio_unassign(conn: Conn, projects: list[int], teammates: list[str]) -> None:
    await conn.execute(queries["studio_unassign"], projects, teammates)


async def studio_assigned(conn: Conn, project_id: int, teammates: list[str]) -> set[str]:
    rows = await conn.fetch(queries["studio_assigned"], project_id, teammates)
    return {r["teammate_id"] for r in rows}


async def studio_groups(conn: Conn, project_id: int, name: str | None = None) -> list[Row]:
    return await conn.fetch(queries["studio_groups"], project_id, name)


async def studio_create_group(conn: Conn, group_id: str, project_id: int, name: str) -> None:
    if await conn.fetchval(queries["studio_create_group"], group_id, project_id, name) is None:
        raise Conflict(f"A project group named '{name}' already exists in this project.")


async def studio_group_members(
    conn: Conn, group_id: str, add: list[str], remove: list[str]
) -> None:
    await conn.execute(queries["studio_group_remove"], group_id, remove)
    await conn.execute(queries["studio_group_add"], group_id, add)


async def studio_batches(conn: Conn, p: Principal, name: str | None = None) -> list[Row]:
    return await conn.fetch(queries["studio_batches"], *_who(p), name)


async def studio_group_ids(conn: Conn, project_id: int, names: list[str]) -> dict[str, str]:
    rows = await conn.fetch(queries["studio_group_ids"], project_id, names)
    return {r["name"]: r["id"] for r in rows}


async def studio_set_groups(conn: Conn, batch_id: int, group_ids: list[str]) -> None:
    await conn.execute(queries["studio_set_groups"], batch_id, group_ids)


async def studio_set_priorities(conn: Conn, p: Principal, names: list[str]) -> None:
    await conn.execute(queries["studio_set_priorities"], *_who(p), names)


async def studio_work(conn: Conn, p: Principal, teammate_id: str) -> list[Row]:
    return await conn.fetch(queries["studio_work"], *_who(p), teammate_id)


# --- accounts ------------------------------------------------------------------------


async def get_account(conn: Conn, account_id: str) -> Row | None:
    return await conn.fetchrow(queries["get_account"], account_id)


async def set_default_callback_url(conn: Conn, account_id: str, url: str | None) -> Row | None:
    return await conn.fetchrow(queries["set_default_callback_url"], account_id, url)
