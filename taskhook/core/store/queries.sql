-- Every statement taskhook runs, by name. Loaded by taskhook/core/store/queries.py;
-- callers write queries["name"]. Parameters are asyncpg $n placeholders only.

-- name: custom_plans
-- See store._custom_plans: this transaction plans each statement for its parameters.
SET LOCAL plan_cache_mode = force_custom_plan;

-- name: begin_generic_plans
-- See store.generic_plans_transaction: a transaction whose statements reuse generic plans,
-- begun in one round trip (two statements of the simple protocol).
BEGIN; SET LOCAL plan_cache_mode = force_generic_plan;

-- name: commit
COMMIT;

-- name: rollback
ROLLBACK;

-- name: ping
-- Readiness probes and the listener's liveness check: the server answers.
SELECT 1;

-- name: migrate_lock
-- Serializes concurrent migrations (taskhook/core/store/schema.py).
SELECT pg_advisory_xact_lock($1);

-- name: applied_schema_digest
SELECT digest FROM schema_state WHERE id;

-- name: record_schema_digest
INSERT INTO schema_state (id, digest) VALUES (true, $1)
ON CONFLICT (id) DO UPDATE SET digest = EXCLUDED.digest, applied_at = now();

-- name: schema_exists
-- Whether the database has a schema at all: a new one is made from schema.sql.
SELECT to_regclass('tasks') IS NOT NULL;

-- name: migrations_recorded
-- Whether the database records its migrations (migration 002 and later do).
SELECT to_regclass('schema_migrations') IS NOT NULL;

-- name: applied_migrations
SELECT version FROM schema_migrations;

-- name: record_migration
INSERT INTO schema_migrations (version, name) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING;

-- name: server_token_key
SELECT token_key FROM server_secrets WHERE id;

-- name: count_accounts
SELECT count(*) FROM accounts;

-- name: insert_account
-- The secrets arrive encrypted (taskhook/core/secretbox.py).
INSERT INTO accounts (id, name, callback_auth_key_enc, signing_secret_enc)
VALUES ($1, $2, $3, $4)
RETURNING id;

-- name: claim_secret_key_check
-- The first process records which key encrypts the secrets; every later one reads it back
-- (the row lock makes two first starts agree).
UPDATE server_secrets SET secret_key_check = coalesce(secret_key_check, $1) WHERE id
RETURNING secret_key_check;

-- name: has_plaintext_secrets
SELECT EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'accounts'
                 AND column_name = 'signing_secret');

-- name: plaintext_secrets
SELECT id, callback_auth_key, signing_secret FROM accounts FOR UPDATE;

-- name: store_encrypted_secrets
UPDATE accounts SET callback_auth_key_enc = $2, signing_secret_enc = $3 WHERE id = $1;

-- name: drop_plaintext_secrets
ALTER TABLE accounts DROP COLUMN callback_auth_key, DROP COLUMN signing_secret;

-- name: rotate_signing_secret
-- The current secret becomes the old one, valid (as a second signature) for $3 seconds.
UPDATE accounts
SET old_signing_secret_enc = CASE WHEN $3 > 0 THEN signing_secret_enc END,
    old_secret_until = CASE WHEN $3 > 0 THEN now() + make_interval(secs => $3) END,
    signing_secret_enc = $2
WHERE id = $1
RETURNING old_secret_until;

-- name: insert_api_key
INSERT INTO api_keys (key_hash, account_id, is_test, key_prefix)
VALUES ($1, $2, $3, $4);

-- name: list_accounts
-- `taskhook accounts list`: every account, oldest first, with each key's prefix (the keys
-- themselves are stored only as digests); an account without keys has one row of NULLs.
SELECT a.id, a.name, a.created_at,
       k.key_prefix, k.is_test, k.created_at AS key_created_at, k.revoked_at
FROM accounts a LEFT JOIN api_keys k ON k.account_id = a.id
ORDER BY a.created_at, a.id, k.created_at, k.is_test;

-- name: lock_account
-- `taskhook accounts new-keys`: the account exists, and two runs at once take turns.
SELECT id, name FROM accounts WHERE id = $1 FOR UPDATE;

-- name: revoke_other_api_keys
-- Every unrevoked key of the account but the ones given ($2, digests): the keys a
-- `new-keys --revoke-old` replaces. Sessions they opened end with them (web_session).
UPDATE api_keys SET revoked_at = now()
WHERE account_id = $1 AND revoked_at IS NULL AND key_hash <> ALL ($2::bytea[])
RETURNING key_prefix;

-- name: authenticate
-- One index probe on the key digest; a revoked key finds nothing.
SELECT a.id AS account_id, a.name, k.is_test, a.default_callback_url
FROM api_keys k JOIN accounts a ON a.id = k.account_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL;

-- name: get_account
SELECT * FROM accounts WHERE id = $1;

-- name: set_default_callback_url
UPDATE accounts SET default_callback_url = $2 WHERE id = $1 RETURNING *;

-- name: insert_project
-- ON CONFLICT: a duplicate name returns no row, which the store turns into a 409.
INSERT INTO projects (account_id, is_test, name, type, param_history, rapid, studio, dataset_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (account_id, is_test, name) DO NOTHING
RETURNING *;

-- name: get_project
SELECT * FROM projects WHERE account_id = $1 AND is_test = $2 AND name = $3;

-- name: list_projects
SELECT * FROM projects WHERE account_id = $1 AND is_test = $2 ORDER BY created_at, id;

-- name: append_project_params
-- The new entry's version is the history's length, so versions run 0, 1, 2, ...
UPDATE projects
SET param_history = param_history
    || jsonb_build_array($4::jsonb || jsonb_build_object(
           'version', jsonb_array_length(param_history),
           'created_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
WHERE account_id = $1 AND is_test = $2 AND name = $3
RETURNING *;

-- name: insert_batch
INSERT INTO batches (account_id, is_test, project_id, name, status, callback,
                     calibration_batch, self_label_batch, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (account_id, is_test, name) DO NOTHING
RETURNING id;

-- name: get_batch
-- 'completed' is derived: a finalized batch with tasks and none of them pending.
SELECT b.*, p.name AS project_name,
       CASE WHEN b.status = 'in_progress'
                 AND EXISTS (SELECT 1 FROM tasks t WHERE t.account_id = b.account_id
                             AND t.is_test = b.is_test AND t.batch = b.name)
                 AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.account_id = b.account_id
                                 AND t.is_test = b.is_test AND t.batch = b.name
                                 AND t.status = 'pending')
            THEN 'completed' ELSE b.status END AS effective_status
FROM batches b JOIN projects p ON p.id = b.project_id
WHERE b.account_id = $1 AND b.is_test = $2 AND b.name = $3;

-- name: batch_task_counts
SELECT status, count(*) AS n FROM tasks
WHERE account_id = $1 AND is_test = $2 AND batch = $3
GROUP BY status;

-- name: list_batches
-- Offset paging, as the SDK's batches() expects; filters are optional ($n IS NULL).
WITH b AS (
    SELECT b.*, p.name AS project_name,
           CASE WHEN b.status = 'in_progress'
                     AND EXISTS (SELECT 1 FROM tasks t WHERE t.account_id = b.account_id
                                 AND t.is_test = b.is_test AND t.batch = b.name)
                     AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.account_id = b.account_id
                                     AND t.is_test = b.is_test AND t.batch = b.name
                                     AND t.status = 'pending')
                THEN 'completed' ELSE b.status END AS effective_status
    FROM batches b JOIN projects p ON p.id = b.project_id
    WHERE b.account_id = $1 AND b.is_test = $2
      AND ($3::text IS NULL OR p.name = $3)
      AND ($4::timestamptz IS NULL OR b.created_at >= $4)
      AND ($5::timestamptz IS NULL OR b.created_at <= $5)
)
SELECT *, count(*) OVER () AS total FROM b
WHERE ($6::text IS NULL OR effective_status = $6)
ORDER BY created_at DESC, id DESC
LIMIT $7 OFFSET $8;

-- name: finalize_batch
-- Only a staging batch moves: a paused or cancelled one (v2) is not revived by a finalize.
UPDATE batches SET status = 'in_progress'
WHERE account_id = $1 AND is_test = $2 AND name = $3 AND status = 'staging'
RETURNING id;

-- name: set_batch_metadata
UPDATE batches SET metadata = $4
WHERE account_id = $1 AND is_test = $2 AND name = $3
RETURNING id;

-- name: insert_task
INSERT INTO tasks (id, account_id, is_test, type, status, project, batch, instruction,
                   callback_url, params, response, metadata, tags, unique_id,
                   clear_unique_id_on_error, priority, project_param_version,
                   customer_review_status, completed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        CASE WHEN $5 = 'completed' THEN clock_timestamp() END)
RETURNING *;

-- name: task_id_by_unique_id
SELECT id FROM tasks WHERE account_id = $1 AND is_test = $2 AND unique_id = $3;

-- name: get_task
SELECT * FROM tasks WHERE account_id = $1 AND is_test = $2 AND id = $3;

-- name: lock_task
SELECT * FROM tasks WHERE account_id = $1 AND is_test = $2 AND id = $3 FOR UPDATE;

-- name: list_tasks
-- Keyset paging, newest first: ($18, $19) is the (created_at, id) of the last row of
-- the previous page. Every filter is optional; tags must all be present.
SELECT * FROM tasks
WHERE account_id = $1 AND is_test = $2
  AND ($3::text IS NULL OR project = $3)
  AND ($4::text IS NULL OR batch = $4)
  AND ($5::text[] IS NULL OR status = ANY ($5))
  AND ($6::text IS NULL OR type = $6)
  AND ($7::timestamptz IS NULL OR created_at >= $7)
  AND ($8::timestamptz IS NULL OR created_at <= $8)
  AND ($9::timestamptz IS NULL OR completed_at >= $9)
  AND ($10::timestamptz IS NULL OR completed_at <= $10)
  AND ($11::timestamptz IS NULL OR updated_at >= $11)
  AND ($12::timestamptz IS NULL OR updated_at <= $12)
  AND ($13::text[] IS NULL OR customer_review_status = ANY ($13))
  AND ($14::text[] IS NULL OR unique_id = ANY ($14))
  AND ($15::text[] IS NULL OR tags @> $15)
  -- The Tasks tab's own filters (the API passes NULL): In Progress / Queued, and Redo.
  AND ($16::boolean IS NULL OR work_started = $16)
  AND ($17::boolean IS NULL
       OR (times_redone > 0 OR (status = 'pending' AND completed_at IS NOT NULL)) = $17)
  AND ($18::timestamptz IS NULL OR (created_at, id) < ($18, $19::text))
ORDER BY created_at DESC, id DESC
LIMIT $20;

-- name: count_tasks
-- The same filters as list_tasks, without the cursor.
SELECT count(*) FROM tasks
WHERE account_id = $1 AND is_test = $2
  AND ($3::text IS NULL OR project = $3)
  AND ($4::text IS NULL OR batch = $4)
  AND ($5::text[] IS NULL OR status = ANY ($5))
  AND ($6::text IS NULL OR type = $6)
  AND ($7::timestamptz IS NULL OR created_at >= $7)
  AND ($8::timestamptz IS NULL OR created_at <= $8)
  AND ($9::timestamptz IS NULL OR completed_at >= $9)
  AND ($10::timestamptz IS NULL OR completed_at <= $10)
  AND ($11::timestamptz IS NULL OR updated_at >= $11)
  AND ($12::timestamptz IS NULL OR updated_at <= $12)
  AND ($13::text[] IS NULL OR customer_review_status = ANY ($13))
  AND ($14::text[] IS NULL OR unique_id = ANY ($14))
  AND ($15::text[] IS NULL OR tags @> $15)
  AND ($16::boolean IS NULL OR work_started = $16)
  AND ($17::boolean IS NULL
       OR (times_redone > 0 OR (status = 'pending' AND completed_at IS NOT NULL)) = $17);

-- name: cancel_task
UPDATE tasks
SET status = 'canceled',
    unique_id = CASE WHEN $4 THEN NULL ELSE unique_id END,
    updated_at = clock_timestamp()
WHERE account_id = $1 AND is_test = $2 AND id = $3
RETURNING *;

-- name: set_unique_id
UPDATE tasks SET unique_id = $4, updated_at = clock_timestamp()
WHERE account_id = $1 AND is_test = $2 AND id = $3
RETURNING *;

-- name: set_metadata
UPDATE tasks SET metadata = $4, updated_at = clock_timestamp()
WHERE account_id = $1 AND is_test = $2 AND id = $3
RETURNING *;

-- name: set_tags
UPDATE tasks SET tags = $4, updated_at = clock_timestamp()
WHERE account_id = $1 AND is_test = $2 AND id = $3
RETURNING *;

-- name: record_audit
-- Appends the audit record and, when given, the comment ($5 may be NULL).
UPDATE tasks
SET customer_review_status = $4,
    customer_review_comments = CASE WHEN $5::text IS NULL THEN customer_review_comments
                                    ELSE coalesce(customer_review_comments, '[]'::jsonb)
                                         || jsonb_build_array($5::text) END,
    audits = audits || jsonb_build_array($6::jsonb),
    updated_at = clock_timestamp()
WHERE account_id = $1 AND is_test = $2 AND id = $3
RETURNING *;

-- name: idempotency_claim
-- Claims the key for this request, or returns the row that holds it. A row older than
-- 24 hours, or an in-flight claim whose holder died (locked_until passed), is taken over.
WITH claimed AS (
    INSERT INTO idempotency_keys AS k (account_id, is_test, key, request_hash, locked_until)
    VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
    ON CONFLICT (account_id, is_test, key) DO UPDATE
        SET request_hash = EXCLUDED.request_hash, state = 'in_flight', status_code = NULL,
            response_body = NULL, locked_until = EXCLUDED.locked_until, created_at = now()
        WHERE k.created_at < now() - interval '24 hours'
           OR (k.state = 'in_flight' AND k.locked_until < now())
    RETURNING true AS claimed, k.request_hash, k.state, k.status_code, k.response_body
)
SELECT * FROM claimed
UNION ALL
SELECT false, request_hash, state, status_code, response_body FROM idempotency_keys
WHERE account_id = $1 AND is_test = $2 AND key = $3 AND NOT EXISTS (SELECT 1 FROM claimed);

-- name: idempotency_complete
UPDATE idempotency_keys
SET state = 'done', status_code = $4, response_body = $5
WHERE account_id = $1 AND is_test = $2 AND key = $3;

-- name: idempotency_release
DELETE FROM idempotency_keys WHERE account_id = $1 AND is_test = $2 AND key = $3;

-- name: prune_idempotency_keys
DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours';

-- ===== event ingest =====

-- name: lock_tasks_and_claim_events
-- The first statement of an ingest group: see the function taskhook_lock_and_claim in
-- schema.sql. Rows with an id are the locked tasks; rows with an event_id, the new events.
SELECT * FROM taskhook_lock_and_claim($1::text[], $2::text[], $3::text[], $4::text[]);

-- name: forget_event_ids
-- Rejected events are not kept, so the same event_id can apply once its task is ready.
DELETE FROM ingested_events WHERE event_id = ANY ($1::text[]);

-- name: mark_started
-- updated_at is when taskhook changed the task (clock_timestamp(), as everywhere), not the
-- event's occurred_at: a late event must still show up to updated_after polling.
UPDATE tasks SET work_started = true, updated_at = clock_timestamp() WHERE id = $1 RETURNING *;

-- name: mark_completed
-- A completion after an earlier one (a recall in between) is a redo. completed_at keeps
-- the first completion and updated_at moves on, as Scale's task
-- reference describes ("a task can be redone, and updated after its completion").
UPDATE tasks
SET status = 'completed', response = $2, completed_at = coalesce(completed_at, $3),
    updated_at = clock_timestamp(),
    customer_review_status = 'pending',
    times_redone = times_redone + (completed_at IS NOT NULL)::int
WHERE id = $1
RETURNING *;

-- name: complete_tasks
-- mark_completed for many tasks in one statement (ingest group commit; each task once).
-- A task whose callback will be enqueued ($4) becomes unresolved here, in the same new
-- row version, instead of in a second update by enqueue_deliveries.
UPDATE tasks t
SET status = 'completed', response = u.response::jsonb,
    completed_at = coalesce(t.completed_at, u.at),
    updated_at = clock_timestamp(),
    customer_review_status = 'pending',
    times_redone = t.times_redone + (t.completed_at IS NOT NULL)::int,
    callback_succeeded = CASE WHEN u.calls_back THEN NULL ELSE t.callback_succeeded END
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bool[])
     AS u(id, response, at, calls_back)
-- = ANY: a primary-key probe per task, whatever size the table is believed to have.
WHERE t.id = ANY ($1::text[]) AND t.id = u.id
RETURNING t.*;

-- name: mark_errored
UPDATE tasks
SET status = 'error', response = $2, updated_at = clock_timestamp(),
    unique_id = CASE WHEN clear_unique_id_on_error THEN NULL ELSE unique_id END
WHERE id = $1
RETURNING *;

-- name: mark_recalled
UPDATE tasks SET status = 'pending', work_started = false, updated_at = clock_timestamp()
WHERE id = $1
RETURNING *;

-- name: mark_fixed
-- The replaced response is appended to prior_responses; comments append, when given.
UPDATE tasks
SET prior_responses = coalesce(prior_responses, '[]'::jsonb) || jsonb_build_array(response),
    response = $2,
    customer_review_status = 'fixed',
    customer_review_comments = CASE WHEN $3::text IS NULL THEN customer_review_comments
                                    ELSE coalesce(customer_review_comments, '[]'::jsonb)
                                         || jsonb_build_array($3::text) END,
    audits = audits || jsonb_build_array($4::jsonb),
    updated_at = clock_timestamp()
WHERE id = $1
RETURNING *;

-- ===== callback delivery =====

-- name: enqueue_deliveries
-- Enqueues many callbacks in one statement, in input order (ids ascend with it). A new
-- callback makes its task's callback_succeeded unresolved until it ends. It waits while an
-- earlier delivery of the task is unfinished (per-task order): one already stored, or one
-- earlier in this same input ($8, since a statement does not see its own inserts). The
-- caller holds the tasks' row locks, so two enqueues for one task cannot miss each other.
-- The NOTIFY that wakes the dispatchers when this commits rides along (n): no round trip
-- of its own. PostgreSQL delivers one per transaction however often it is called (same
-- channel, same payload), and never one per row, which would serialize commits.
WITH u AS (
    -- Each callback's delivery id is drawn here, in input order, so that the delivery and
    -- its body are inserted from the same rows: no join between them, which without hash
    -- joins (db.PINNED_PLANS) would compare every pair of rows of a large group.
    SELECT s.*, nextval('deliveries_id_seq') AS id
    FROM (SELECT *
          FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                      $7::text[], $8::bool[]) WITH ORDINALITY
               AS u(task_id, account_id, trigger, target, host, payload, webhook_id,
                    after_first, ord)
          ORDER BY ord) s
), d AS (
    INSERT INTO deliveries (id, task_id, account_id, trigger, target, host, webhook_id, state)
    SELECT u.id, u.task_id, u.account_id, u.trigger, u.target, u.host, u.webhook_id,
           -- A scalar subquery with LIMIT, not EXISTS: PostgreSQL may run an EXISTS as one
           -- hashed scan of every delivery, which a generic plan then repeats per group as
           -- the table grows; this is one probe of deliveries_task_idx per callback.
           CASE WHEN u.after_first OR (SELECT true FROM deliveries e
                                       WHERE e.task_id = u.task_id
                                         AND e.state IN ('waiting', 'pending', 'sending')
                                       LIMIT 1)
                THEN 'waiting' ELSE 'pending' END
    FROM u
    RETURNING id
), p AS (
    INSERT INTO delivery_payloads (delivery_id, payload)
    SELECT u.id, u.payload FROM u
), t AS (
    -- Only when set: an update that changes nothing would still write a new row version.
    UPDATE tasks SET callback_succeeded = NULL
    WHERE id = ANY ($1::text[]) AND callback_succeeded IS NOT NULL
), n AS (
    SELECT pg_notify('taskhook_deliveries', '')
)
SELECT d.id FROM d CROSS JOIN n ORDER BY d.id;

-- name: claim_deliveries
-- Runs on the dispatcher's claim connection, whose settings (db.CLAIM_SETTINGS) its plan
-- needs: no bitmap or sequential scans, one generic plan reused.
-- Claims up to $1 due deliveries under a lease of $2 seconds. Each host gets at most its
-- room: $3 (the per-host cap) less what this dispatcher already has in flight there ($4
-- hosts, $5 counts; $6 for every host not listed); paused hosts get none. A claimed row's
-- next_attempt_at is its lease end, so one due test also re-picks expired leases. Per-task
-- order needs no test here: a later delivery of a task is 'waiting' until the earlier one
-- ends.
--
-- The cost is bounded by the hosts with unfinished work and the rows taken, never by the
-- backlog: the hosts come from a skip scan of deliveries_host_due_idx (one probe per
-- host), and each open host's due rows from one ordered range scan of that index that
-- stops at the host's share. A host at its cap costs one probe, however many of its rows
-- are due, so a hanging host cannot slow the claims of the others. Shares are taken
-- round-robin across hosts, so one busy host cannot take every slot.
--
-- Nor by the dead. The index entries of rows claimed and finished are dead, but while any
-- snapshot older than them is open (a long report, a backup) PostgreSQL can neither vacuum
-- them nor mark them dead, and a scan from the start of a host would visit every one. So
-- each scan starts at a low mark of the claim window (store.ClaimWindow) below which no
-- unclaimed due row of its host lies: the host's own mark if an earlier claim left rows of
-- it due ($9 hosts, $10 marks), else $7, the mark of every other host. A claim returns the
-- next marks: $8 becomes the next $7, and each host it may leave rows due for is marked
-- at its earliest such row (claim_hosts, claim_marks), never later than $8.
--
-- $8 is the horizon that a claim ended before this one began returned (claim_horizon):
-- the start of the oldest open transaction in this database of taskhook's own sessions
-- and of any session that has written, less a tenth of a second (a transaction starts a
-- moment before it shows in pg_stat_activity). Every row taskhook makes due (an enqueue,
-- a retry, a successor made due, a release) has a next_attempt_at no earlier than the
-- start of the transaction that writes it, so a row this claim cannot see yet is no
-- earlier than $8. A read-only snapshot (a report, a backup) does not hold it back; a
-- taskhook session whose state this role may not read holds it at -infinity. NULL stands
-- for -infinity both ways; NULL for $7 and $8 and no marks scan everything (a
-- dispatcher's first claim, and the claim after a failed one). Rows another program
-- made due with an earlier next_attempt_at are found by the sweep (due_hosts), which
-- lowers their hosts' marks.
WITH RECURSIVE marked (host, low) AS (
    SELECT * FROM unnest($9::text[], $10::timestamptz[])
), found (host) AS (
    SELECT min(host) FROM deliveries
    WHERE state IN ('pending', 'sending')
      AND next_attempt_at >= coalesce($7::timestamptz, '-infinity')
    UNION ALL
    SELECT (SELECT min(d.host) FROM deliveries d
            WHERE d.state IN ('pending', 'sending') AND d.host > f.host
              AND d.next_attempt_at >= coalesce($7::timestamptz, '-infinity'))
    FROM found f
    WHERE f.host IS NOT NULL
), hosts AS (
    SELECT h.host,
           CASE WHEN m.host IS NULL THEN coalesce($7::timestamptz, '-infinity')
                ELSE coalesce(m.low, '-infinity') END AS low
    FROM (SELECT host FROM found WHERE host IS NOT NULL UNION SELECT host FROM marked) h
    LEFT JOIN marked m USING (host)
), open_hosts AS (
    SELECT h.host, h.low, $3 - coalesce(b.busy, $6::int) AS room
    FROM hosts h LEFT JOIN unnest($4::text[], $5::int[]) AS b (host, busy) USING (host)
    WHERE h.host <> ALL (ARRAY(SELECT p.host FROM host_pauses p WHERE p.paused_until > now()))
      AND $3 - coalesce(b.busy, $6::int) > 0
), shares AS (
    -- Twice an even split, so hosts with fewer due rows than their share leave room for
    -- the others; at most about 2 x $1 rows are locked in all.
    SELECT host, low,
           least(room, $1::int, ceil(2.0 * $1::int / count(*) OVER ())::int) AS share
    FROM open_hosts
), candidates AS (
    SELECT c.id, c.host, c.next_attempt_at
    FROM shares s CROSS JOIN LATERAL (
        SELECT d.id, d.host, d.next_attempt_at
        FROM deliveries d
        WHERE d.state IN ('pending', 'sending') AND d.host = s.host
          AND d.next_attempt_at >= s.low AND d.next_attempt_at <= now()
        ORDER BY d.next_attempt_at, d.id
        LIMIT s.share
        FOR UPDATE OF d SKIP LOCKED
    ) c
), chosen AS (
    SELECT id, host
    FROM (SELECT id, host, next_attempt_at,
                 row_number() OVER (PARTITION BY host ORDER BY next_attempt_at, id) AS turn
          FROM candidates) ranked
    ORDER BY turn, next_attempt_at, id
    LIMIT $1
), left_due AS (
    -- Hosts that may have rows due after this claim, from their earliest such row: the
    -- first candidate of a host whose share ran out or whose candidates were not all
    -- chosen, and the first row of a host that got no share (at its cap, or paused).
    SELECT s.host, (SELECT min(c.next_attempt_at) FROM candidates c WHERE c.host = s.host) AS at
    FROM shares s
    WHERE s.share <= (SELECT count(*) FROM candidates c WHERE c.host = s.host)
       OR (SELECT count(*) FROM candidates c WHERE c.host = s.host)
          > (SELECT count(*) FROM chosen c WHERE c.host = s.host)
    UNION ALL
    SELECT h.host, (SELECT d.next_attempt_at FROM deliveries d
                    WHERE d.state IN ('pending', 'sending') AND d.host = h.host
                      AND d.next_attempt_at >= h.low
                    ORDER BY d.next_attempt_at, d.id LIMIT 1)
    FROM hosts h
    WHERE h.host NOT IN (SELECT s.host FROM shares s)
), marks AS (
    SELECT array_agg(host ORDER BY host) AS hosts,
           array_agg(nullif(least(coalesce($8::timestamptz, '-infinity'), at), '-infinity')
                     ORDER BY host) AS lows
    FROM left_due
    WHERE at IS NOT NULL
), horizon AS (
    SELECT CASE WHEN bool_or(a.state IS NULL) THEN NULL
                ELSE least(now(), min(a.xact_start)) - interval '0.1 second' END AS at
    FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.backend_type = 'client backend'
      AND a.pid <> pg_backend_pid()
      AND (a.application_name = 'taskhook' OR a.backend_xid IS NOT NULL)
)
UPDATE deliveries d
SET state = 'sending', attempts = d.attempts + 1, lease_token = gen_random_uuid(),
    lease_until = now() + make_interval(secs => $2),
    next_attempt_at = now() + make_interval(secs => $2)
FROM accounts a
-- The chosen ids as an array, not a join: a primary-key probe per row whatever the plan's
-- estimate (the reused generic plan guesses a tenth of the backlog for LIMIT $1, and
-- joined it would hash the chosen rows and read the whole key).
WHERE d.id = ANY (ARRAY(SELECT id FROM chosen)) AND a.id = d.account_id
-- The payload is stored as the JSON text that is sent and signed: no decode, no re-encode.
-- A subquery, not a join: one primary-key probe per claimed row whatever the statistics
-- of delivery_payloads say (a join may be planned as a scan of the whole table).
RETURNING d.id, d.task_id, d.account_id, d.trigger, d.target, d.host,
          (SELECT p.payload FROM delivery_payloads p WHERE p.delivery_id = d.id) AS payload,
          d.webhook_id, d.attempts, d.lease_token, d.created_at,
          a.callback_auth_key_enc, a.signing_secret_enc,
          CASE WHEN a.old_secret_until > now() THEN a.old_signing_secret_enc END
              AS old_signing_secret_enc,
          (SELECT hosts FROM marks) AS claim_hosts, (SELECT lows FROM marks) AS claim_marks,
          (SELECT at FROM horizon) AS claim_horizon;

-- name: due_hosts
-- The claim window's sweep (store.ClaimWindow.lower): every host with a due row, and its
-- earliest due row, scanned from the start of each host. Under a long-held snapshot this
-- walks the dead entries the claims skip; it runs once a minute beside the claims, never
-- in their way.
WITH RECURSIVE hosts (host) AS (
    SELECT min(host) FROM deliveries WHERE state IN ('pending', 'sending')
    UNION ALL
    SELECT (SELECT min(d.host) FROM deliveries d
            WHERE d.state IN ('pending', 'sending') AND d.host > h.host)
    FROM hosts h
    WHERE h.host IS NOT NULL
)
SELECT h.host, (SELECT d.next_attempt_at FROM deliveries d
                WHERE d.state IN ('pending', 'sending') AND d.host = h.host
                  AND d.next_attempt_at <= now()
                ORDER BY d.next_attempt_at, d.id LIMIT 1) AS due
FROM hosts h
WHERE h.host IS NOT NULL;

-- name: record_attempts
-- Records many attempts in one round trip (batched outcome writes): see the function
-- taskhook_record_attempts in schema.sql, which locks the tasks and then writes.
SELECT id FROM taskhook_record_attempts($1::text[], $2::bigint[], $3::uuid[], $4::text[],
                                        $5::float8[], $6::timestamptz[], $7::int[],
                                        $8::int[], $9::text[], $10::text[]) AS id;

-- name: release_deliveries
-- Hand deliveries back unsent (shutdown mid-send, or held too long before their send): due
-- at once, the attempt not counted. Fenced by the lease token like an outcome write.
UPDATE deliveries d
SET state = 'pending', next_attempt_at = now(), lease_token = NULL, lease_until = NULL,
    attempts = d.attempts - 1
FROM unnest($1::bigint[], $2::uuid[]) AS r (id, lease_token)
WHERE d.id = r.id AND d.lease_token = r.lease_token;

-- name: pause_host
INSERT INTO host_pauses (host, paused_until) VALUES ($1, now() + make_interval(secs => $2))
ON CONFLICT (host) DO UPDATE
SET paused_until = greatest(host_pauses.paused_until, EXCLUDED.paused_until);

-- name: task_deliveries
-- GET /v1/task/{id}/callbacks: oldest delivery first, attempts in order.
SELECT d.id, d.webhook_id, d.trigger, d.state, d.created_at,
       coalesce(jsonb_agg(jsonb_build_object(
                    'attempt', a.attempt,
                    'started_at', to_char(a.started_at AT TIME ZONE 'UTC',
                                          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                    'duration_ms', a.duration_ms, 'status_code', a.status_code,
                    'error', a.error, 'response_excerpt', a.response_excerpt)
                ORDER BY a.attempt) FILTER (WHERE a.delivery_id IS NOT NULL),
                '[]'::jsonb) AS attempts
FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id
WHERE d.task_id = $1
GROUP BY d.id
ORDER BY d.id;

-- name: latest_delivery_payload
SELECT p.payload
FROM deliveries d JOIN delivery_payloads p ON p.delivery_id = d.id
WHERE d.task_id = $1
ORDER BY d.id DESC LIMIT 1;

-- name: queue_stats
-- Unfinished deliveries, counted through the partial indexes that hold only them (the
-- table keeps the finished ones for the retention period).
SELECT (SELECT count(*) FROM deliveries WHERE state IN ('pending', 'sending'))
       + (SELECT count(*) FROM deliveries WHERE state = 'waiting') AS depth,
       coalesce(extract(epoch FROM now() - (SELECT min(next_attempt_at) FROM deliveries
                                            WHERE state = 'pending'
                                              AND next_attempt_at <= now())), 0)
           AS oldest_due_age;

-- name: prune_finished_deliveries
-- Retention: at most $2 finished deliveries (and, by cascade, their bodies and attempts)
-- finished more than $1 days ago, oldest first; the caller repeats it while rows go, so no
-- transaction holds more than $2 of them.
DELETE FROM deliveries
WHERE id = ANY (ARRAY(SELECT id FROM deliveries
                      WHERE finished_at < now() - make_interval(days => $1)
                      ORDER BY finished_at LIMIT $2));

-- name: prune_ingested_events
DELETE FROM ingested_events
WHERE event_id = ANY (ARRAY(SELECT event_id FROM ingested_events
                            WHERE received_at < now() - make_interval(days => $1)
                            ORDER BY received_at LIMIT $2));

-- ===== v2 API. Called from taskhook/core/store/v2.py =====
-- v2 names projects and batches by public_id; tasks keep the names (as v1 does) and the
-- reads join to show the ids. $1, $2 are always the caller's account and world.

-- name: v2_find_project
-- By id ($3) or name ($4), or both (then both must match); the caller gives at least one.
SELECT * FROM projects
WHERE account_id = $1 AND is_test = $2
  AND ($3::text IS NULL OR public_id = $3) AND ($4::text IS NULL OR name = $4);

-- name: v2_list_projects
-- Oldest first, as GET /v1/projects; created bounds are exclusive.
SELECT * FROM projects
WHERE account_id = $1 AND is_test = $2
  AND ($3::text[] IS NULL OR public_id = ANY ($3))
  AND ($4::timestamptz IS NULL OR created_at > $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
ORDER BY created_at, id;

-- name: v2_list_batches
-- Every batch read of v2: by ids ($3), name ($4), project ($5, internal id), effective
-- status ($6), created and completed bounds ($7-$10, exclusive), keyset paging newest first
-- after ($11, $12) = (created_at, public_id), at most $13 rows. The status is derived as in
-- get_batch: an in-progress batch with tasks and none pending reads 'completed', and its
-- completed_at is its last task's.
WITH b AS (
    SELECT b.*, p.public_id AS project_public_id, p.name AS project_name,
           (b.status = 'in_progress'
            AND EXISTS (SELECT 1 FROM tasks t WHERE t.account_id = b.account_id
                        AND t.is_test = b.is_test AND t.batch = b.name)
            AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.account_id = b.account_id
                            AND t.is_test = b.is_test AND t.batch = b.name
                            AND t.status = 'pending')) AS done
    FROM batches b JOIN projects p ON p.id = b.project_id
    WHERE b.account_id = $1 AND b.is_test = $2
      AND ($3::text[] IS NULL OR b.public_id = ANY ($3))
      AND ($4::text IS NULL OR b.name = $4)
      AND ($5::bigint IS NULL OR b.project_id = $5)
      AND ($7::timestamptz IS NULL OR b.created_at > $7)
      AND ($8::timestamptz IS NULL OR b.created_at < $8)
      AND ($11::timestamptz IS NULL OR (b.created_at, b.public_id) < ($11, $12::text))
), s AS (
    SELECT b.*,
           CASE WHEN done THEN 'completed' ELSE status END AS effective_status,
           CASE WHEN done THEN (SELECT max(t.completed_at) FROM tasks t
                                WHERE t.account_id = b.account_id AND t.is_test = b.is_test
                                  AND t.batch = b.name) END AS completed_at
    FROM b
)
SELECT * FROM s
WHERE ($6::text IS NULL OR effective_status = $6)
  AND ($9::timestamptz IS NULL OR completed_at > $9)
  AND ($10::timestamptz IS NULL OR completed_at < $10)
ORDER BY created_at DESC, public_id DESC
LIMIT $13;

-- name: v2_lock_batch
SELECT * FROM batches WHERE account_id = $1 AND is_test = $2 AND public_id = $3 FOR UPDATE;

-- name: v2_set_batch_status
UPDATE batches SET status = $4 WHERE account_id = $1 AND is_test = $2 AND public_id = $3;

-- name: v2_set_batch_metadata
UPDATE batches SET metadata = $4 WHERE account_id = $1 AND is_test = $2 AND public_id = $3;

-- name: v2_cancel_unstarted_tasks
-- cancel_batch: the batch's queued tasks (pending, work not started) become canceled. The
-- rows are locked in id order first, as ingest locks them, so the two cannot deadlock.
WITH locked AS (
    SELECT id FROM tasks
    WHERE account_id = $1 AND is_test = $2 AND batch = $3
      AND status = 'pending' AND NOT work_started
    ORDER BY id
    FOR UPDATE
)
UPDATE tasks t SET status = 'canceled', updated_at = clock_timestamp()
FROM locked WHERE t.id = locked.id;

-- name: v2_get_task
SELECT t.*, p.public_id AS project_public_id, b.public_id AS batch_public_id
FROM tasks t
LEFT JOIN projects p ON p.account_id = t.account_id AND p.is_test = t.is_test
                    AND p.name = t.project
LEFT JOIN batches b ON b.account_id = t.account_id AND b.is_test = t.is_test AND b.name = t.batch
WHERE t.account_id = $1 AND t.is_test = $2 AND t.id = $3;

-- name: v2_list_tasks
-- GET /v2/tasks: project ($3) and batch ($4) by name, one status ($5), completed bounds
-- ($6, $7; exclusive, so tasks never completed drop out), keyset paging newest first after
-- ($8, $9) = (created_at, id), at most $10 rows (tasks_project_list_idx, tasks_batch_list_idx).
SELECT t.*, p.public_id AS project_public_id, b.public_id AS batch_public_id
FROM tasks t
LEFT JOIN projects p ON p.account_id = t.account_id AND p.is_test = t.is_test
                    AND p.name = t.project
LEFT JOIN batches b ON b.account_id = t.account_id AND b.is_test = t.is_test AND b.name = t.batch
WHERE t.account_id = $1 AND t.is_test = $2
  AND ($3::text IS NULL OR t.project = $3)
  AND ($4::text IS NULL OR t.batch = $4)
  AND ($5::text IS NULL OR t.status = $5)
  AND ($6::timestamptz IS NULL OR t.completed_at > $6)
  AND ($7::timestamptz IS NULL OR t.completed_at < $7)
  AND ($8::timestamptz IS NULL OR (t.created_at, t.id) < ($8, $9::text))
ORDER BY t.created_at DESC, t.id DESC
LIMIT $10;

-- name: v2_annotation_task
SELECT t.id FROM v2_annotations a JOIN tasks t ON t.id = a.task_id
WHERE a.account_id = $1 AND a.is_test = $2 AND a.annotation_id = $3;

-- name: v2_index_annotations
-- (account_id, is_test, annotation_id, task_id) rows; each key once per call.
INSERT INTO v2_annotations (account_id, is_test, annotation_id, task_id)
SELECT * FROM unnest($1::text[], $2::bool[], $3::text[], $4::text[])
ON CONFLICT (account_id, is_test, annotation_id) DO UPDATE SET task_id = EXCLUDED.task_id;

-- name: v2_task_project
-- task.delivered: the task's account, world and project (internal id). Ingest is
-- account-blind: task ids are global.
SELECT t.account_id, t.is_test, p.id AS project_id
FROM tasks t JOIN projects p ON p.account_id = t.account_id AND p.is_test = t.is_test
                            AND p.name = t.project
WHERE t.id = $1;

-- name: v2_make_delivery
-- The project's delivery named $4, made with id $5 and delivered_at $6 if it is new. A
-- delivery made concurrently by another transaction returns nothing: the caller asks again.
WITH made AS (
    INSERT INTO v2_deliveries (id, account_id, is_test, project_id, name, delivered_at)
    VALUES ($5, $1, $2, $3, $4, $6)
    ON CONFLICT (account_id, is_test, project_id, name) DO NOTHING
    RETURNING id
)
SELECT id FROM made
UNION ALL
SELECT id FROM v2_deliveries
WHERE account_id = $1 AND is_test = $2 AND project_id = $3 AND name = $4;

-- name: v2_deliver_task
-- Adds task $2 (its current response) to delivery $1; delivering it again refreshes both.
-- Returns the task, unchanged.
WITH added AS (
    INSERT INTO v2_delivery_tasks (delivery_id, task_id, response, delivered_at)
    SELECT $1, t.id, t.response, $3 FROM tasks t WHERE t.id = $2
    ON CONFLICT (delivery_id, task_id) DO UPDATE
        SET response = EXCLUDED.response, delivered_at = EXCLUDED.delivered_at
)
SELECT * FROM tasks WHERE id = $2;

-- name: v2_list_deliveries
-- By id ($3), or project ($4, internal id) with name ($5) and delivered bounds ($6, $7;
-- exclusive); newest first.
SELECT d.*, p.public_id AS project_public_id,
       (SELECT count(*) FROM v2_delivery_tasks x WHERE x.delivery_id = d.id) AS task_count
FROM v2_deliveries d JOIN projects p ON p.id = d.project_id
WHERE d.account_id = $1 AND d.is_test = $2
  AND ($3::text IS NULL OR d.id = $3)
  AND ($4::bigint IS NULL OR d.project_id = $4)
  AND ($5::text IS NULL OR d.name = $5)
  AND ($6::timestamptz IS NULL OR d.delivered_at > $6)
  AND ($7::timestamptz IS NULL OR d.delivered_at < $7)
ORDER BY d.delivered_at DESC, d.id DESC;

-- name: v2_delivery_task_page
-- GET /v2/delivery: the tasks of delivery $3, newest first, after ($4, $5), at most $6.
SELECT t.*, p.public_id AS project_public_id, b.public_id AS batch_public_id
FROM v2_delivery_tasks x
JOIN tasks t ON t.id = x.task_id
LEFT JOIN projects p ON p.account_id = t.account_id AND p.is_test = t.is_test
                    AND p.name = t.project
LEFT JOIN batches b ON b.account_id = t.account_id AND b.is_test = t.is_test AND b.name = t.batch
WHERE x.delivery_id = $3 AND t.account_id = $1 AND t.is_test = $2
  AND ($4::timestamptz IS NULL OR (t.created_at, t.id) < ($4, $5::text))
ORDER BY t.created_at DESC, t.id DESC
LIMIT $6;

-- name: v2_delivered_responses
-- GET /v2/delivery/tasks: the project's tasks ($3, by name) with their latest delivered
-- response (or the one of delivery $4, which then also filters), status ($5), completed
-- bounds ($6, $7), keyset paging newest first after ($8, $9), at most $10 rows.
SELECT t.id, t.created_at, x.delivery_id, x.delivered_at, x.response
FROM tasks t
LEFT JOIN LATERAL (
    SELECT x.* FROM v2_delivery_tasks x
    WHERE x.task_id = t.id AND ($4::text IS NULL OR x.delivery_id = $4)
    ORDER BY x.delivered_at DESC, x.delivery_id DESC
    LIMIT 1
) x ON true
WHERE t.account_id = $1 AND t.is_test = $2 AND t.project = $3
  AND ($4::text IS NULL OR x.delivery_id IS NOT NULL)
  AND ($5::text IS NULL OR t.status = $5)
  AND ($6::timestamptz IS NULL OR t.completed_at > $6)
  AND ($7::timestamptz IS NULL OR t.completed_at < $7)
  AND ($8::timestamptz IS NULL OR (t.created_at, t.id) < ($8, $9::text))
ORDER BY t.created_at DESC, t.id DESC
LIMIT $10;

-- name: v2_count_delivered_responses
-- The `total` of GET /v2/delivery/tasks: v2_delivered_responses' filters, without paging.
SELECT count(*) FROM tasks t
WHERE t.account_id = $1 AND t.is_test = $2 AND t.project = $3
  AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM v2_delivery_tasks x
                                   WHERE x.task_id = t.id AND x.delivery_id = $4))
  AND ($5::text IS NULL OR t.status = $5)
  AND ($6::timestamptz IS NULL OR t.completed_at > $6)
  AND ($7::timestamptz IS NULL OR t.completed_at < $7);

-- ===== Tasks tab. Called from taskhook/core/store/web.py =====

-- name: web_insert_session
-- Sign-in: a session for a valid (unrevoked) key, in that key's account and world; no row
-- means the key is not valid.
INSERT INTO web_sessions (token_hash, key_hash, account_id, is_test, expires_at)
SELECT $1, k.key_hash, k.account_id, k.is_test, now() + make_interval(secs => $3)
FROM api_keys k
WHERE k.key_hash = $2 AND k.revoked_at IS NULL
RETURNING account_id, is_test;

-- name: web_session
-- The principal of a live session; its key must still be unrevoked.
SELECT a.id AS account_id, a.name, s.is_test, a.default_callback_url
FROM web_sessions s
JOIN api_keys k ON k.key_hash = s.key_hash AND k.revoked_at IS NULL
JOIN accounts a ON a.id = s.account_id
WHERE s.token_hash = $1 AND s.expires_at > now();

-- name: web_delete_session
DELETE FROM web_sessions WHERE token_hash = $1;

-- name: prune_web_sessions
DELETE FROM web_sessions WHERE expires_at < now();

-- name: web_batch_names
-- Suggestions for the batch filter: the account's newest batches in this world.
SELECT name FROM batches WHERE account_id = $1 AND is_test = $2
ORDER BY created_at DESC, id DESC LIMIT 200;

-- name: insert_file
-- ON CONFLICT: a reference_id already taken returns no row, which the store turns into a 409.
INSERT INTO files (id, account_id, is_test, token, display_name, project_name, reference_id,
                   metadata, mimetype, size, sha256, source_url)
VALUES ($3, $1, $2, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (account_id, is_test, reference_id) WHERE reference_id IS NOT NULL DO NOTHING
RETURNING *;

-- name: get_file
SELECT * FROM files WHERE account_id = $1 AND is_test = $2 AND id = $3;

-- name: get_file_content
-- A file by id for its attachment_url, which carries no API key (the caller checks the token).
SELECT id, token, mimetype, size, sha256, display_name FROM files WHERE id = $1;

-- name: list_teammates
SELECT * FROM teammates WHERE account_id = $1 ORDER BY invited_at, email;

-- name: invite_teammates
-- New e-mails ($2, lower case) join with role $3 and ids $4 (one per e-mail); a teammate
-- already on the team keeps its role (an invitation is not a role change).
INSERT INTO teammates (id, account_id, email, role)
SELECT i.id, $1, i.email, $3 FROM unnest($2::text[], $4::text[]) AS i (email, id)
ON CONFLICT (account_id, email) DO NOTHING;

-- name: set_teammates_role
UPDATE teammates SET role = $3 WHERE account_id = $1 AND email = ANY ($2::text[])
RETURNING email;

-- name: studio_teammates
-- Teammates ($2: lower-case e-mails) of account $1, for the Studio calls that name them.
SELECT id, email FROM teammates WHERE account_id = $1 AND email = ANY ($2::text[]);

-- name: studio_projects
-- Projects ($3: names) of a world, for the Studio calls that name them.
SELECT id, name FROM projects WHERE account_id = $1 AND is_test = $2 AND name = ANY ($3::text[]);

-- name: studio_assignments
-- Every teammate of the account with the world's projects assigned to them (names, in
-- creation order; an empty array when none).
SELECT m.email,
       coalesce(array_agg(p.name ORDER BY p.created_at, p.id)
                FILTER (WHERE p.id IS NOT NULL), '{}') AS projects
FROM teammates m
LEFT JOIN studio_assignments a ON a.teammate_id = m.id
LEFT JOIN projects p ON p.id = a.project_id AND p.is_test = $2
WHERE m.account_id = $1
GROUP BY m.email, m.invited_at
ORDER BY m.invited_at, m.email;

-- name: studio_assign
INSERT INTO studio_assignments (project_id, teammate_id)
SELECT p, m FROM unnest($1::bigint[]) AS p, unnest($2::text[]) AS m
ON CONFLICT DO NOTHING;

-- name: studio_unassign
-- Removing a labeler from a project also removes them from that project's groups.
WITH gone AS (
    DELETE FROM studio_assignments
    WHERE project_id = ANY ($1::bigint[]) AND teammate_id = ANY ($2::text[])
)
DELETE FROM project_group_members g USING project_groups pg
WHERE g.group_id = pg.id AND pg.project_id = ANY ($1::bigint[])
  AND g.teammate_id = ANY ($2::text[]);

-- name: studio_assigned
-- Which of teammates $2 are assigned to project $1.
SELECT teammate_id FROM studio_assignments
WHERE project_id = $1 AND teammate_id = ANY ($2::text[]);

-- name: studio_groups
-- Project $1's groups (or the one named $2) with their workers.
SELECT g.id, g.name,
       coalesce(jsonb_agg(jsonb_build_object('id', m.id, 'email', m.email)
                          ORDER BY m.email) FILTER (WHERE m.id IS NOT NULL), '[]') AS workers
FROM project_groups g
LEFT JOIN project_group_members gm ON gm.group_id = g.id
LEFT JOIN teammates m ON m.id = gm.teammate_id
WHERE g.project_id = $1 AND ($2::text IS NULL OR g.name = $2)
GROUP BY g.id, g.name, g.created_at
ORDER BY g.created_at, g.id;

-- name: studio_create_group
-- ON CONFLICT: a taken name returns no row, which the caller turns into a 409.
INSERT INTO project_groups (id, project_id, name) VALUES ($1, $2, $3)
ON CONFLICT (project_id, name) DO NOTHING
RETURNING id;

-- name: studio_group_add
INSERT INTO project_group_members (group_id, teammate_id)
SELECT $1, m FROM unnest($2::text[]) AS m
ON CONFLICT DO NOTHING;

-- name: studio_group_remove
DELETE FROM project_group_members WHERE group_id = $1 AND teammate_id = ANY ($2::text[]);

-- name: studio_batches
-- The world's batches that are not completed, in work order: ranked first (studio_priority),
-- then the rest oldest first; with their task counts and the names of their groups. $3: one
-- batch by name, or NULL for all.
WITH counts AS (
    SELECT t.batch, count(*) AS total, count(*) FILTER (WHERE t.status <> 'pending') AS done
    FROM tasks t
    WHERE t.account_id = $1 AND t.is_test = $2 AND t.batch IS NOT NULL
      AND ($3::text IS NULL OR t.batch = $3)
    GROUP BY t.batch
)
SELECT b.id, b.public_id, b.name, b.studio_priority, b.status, b.created_at,
       p.public_id AS project_public_id, p.name AS project_name, p.id AS project_id,
       coalesce(c.total, 0) AS total, coalesce(c.done, 0) AS completed,
       coalesce((SELECT array_agg(g.name ORDER BY g.name) FROM batch_groups bg
                 JOIN project_groups g ON g.id = bg.group_id WHERE bg.batch_id = b.id),
                '{}') AS groups
FROM batches b
JOIN projects p ON p.id = b.project_id
LEFT JOIN counts c ON c.batch = b.name
WHERE b.account_id = $1 AND b.is_test = $2 AND ($3::text IS NULL OR b.name = $3)
  AND NOT (b.status = 'in_progress' AND coalesce(c.total, 0) > 0 AND c.done = c.total)
ORDER BY b.studio_priority NULLS LAST, b.created_at, b.id;

-- name: studio_set_groups
-- Batch $1 is given exactly the groups $2.
WITH gone AS (DELETE FROM batch_groups WHERE batch_id = $1 AND group_id <> ALL ($2::text[]))
INSERT INTO batch_groups (batch_id, group_id) SELECT $1, g FROM unnest($2::text[]) AS g
ON CONFLICT DO NOTHING;

-- name: studio_group_ids
-- Project $1's groups named $2.
SELECT id, name FROM project_groups WHERE project_id = $1 AND name = ANY ($2::text[]);

-- name: studio_set_priorities
-- Batches $3 (names, in order) get priorities 1..n; every other batch of the world none.
UPDATE batches b
SET studio_priority = x.rank
FROM (SELECT b2.id, r.rank
      FROM batches b2
      LEFT JOIN unnest($3::text[]) WITH ORDINALITY AS r (name, rank) ON r.name = b2.name
      WHERE b2.account_id = $1 AND b2.is_test = $2) x
WHERE b.id = x.id AND b.studio_priority IS DISTINCT FROM x.rank;

-- name: studio_work
-- The batches a labeler ($3, teammate id) works, in work order: not completed, in projects
-- assigned to them, and either given to a group of theirs or to no group at all; with the
-- pending tasks of each.
SELECT b.name, p.name AS project_name, b.studio_priority,
       (SELECT count(*) FROM tasks t WHERE t.account_id = b.account_id
          AND t.is_test = b.is_test AND t.batch = b.name AND t.status = 'pending') AS pending
FROM batches b
JOIN projects p ON p.id = b.project_id
JOIN studio_assignments a ON a.project_id = p.id AND a.teammate_id = $3
WHERE b.account_id = $1 AND b.is_test = $2 AND b.status = 'in_progress'
  AND (NOT EXISTS (SELECT 1 FROM batch_groups bg WHERE bg.batch_id = b.id)
       OR EXISTS (SELECT 1 FROM batch_groups bg
                  JOIN project_group_members gm ON gm.group_id = bg.group_id
                  WHERE bg.batch_id = b.id AND gm.teammate_id = $3))
ORDER BY b.studio_priority NULLS LAST, b.created_at, b.id;

-- name: insert_quality_task
INSERT INTO quality_tasks (id, account_id, is_test, kind, type, project_id, instruction,
                           params, expected_response, initial_response, metadata)
VALUES ($3, $1, $2, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING *, (SELECT name FROM projects WHERE id = $6) AS project_name;

-- name: list_quality_tasks
SELECT q.*, p.name AS project_name
FROM quality_tasks q JOIN projects p ON p.id = q.project_id
WHERE q.project_id = $1 AND q.kind = $2
ORDER BY q.created_at, q.id;

-- name: due_batch_callbacks
-- Batches with a callback not yet queued that have completed (in progress, with tasks, none
-- pending; get_batch's rule), at most $1: locked (another dispatcher's are skipped) and
-- marked queued in the caller's transaction, which also enqueues their deliveries.
WITH due AS (
    SELECT b.id FROM batches b
    WHERE b.callback <> '' AND b.callback_queued_at IS NULL AND b.status = 'in_progress'
      AND EXISTS (SELECT 1 FROM tasks t WHERE t.account_id = b.account_id
                  AND t.is_test = b.is_test AND t.batch = b.name)
      AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.account_id = b.account_id
                      AND t.is_test = b.is_test AND t.batch = b.name AND t.status = 'pending')
    ORDER BY b.id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE batches b SET callback_queued_at = now()
FROM due, projects p
WHERE b.id = due.id AND p.id = b.project_id
RETURNING b.*, p.name AS project_name, 'completed' AS effective_status;

-- name: enqueue_batch_delivery
-- One batch callback ($1 batch id), pending at once; the NOTIFY wakes the dispatchers.
WITH d AS (
    INSERT INTO deliveries (batch_id, account_id, trigger, target, host, webhook_id, state)
    VALUES ($1, $2, 'batch_completed', $3, $4, $5, 'pending')
    RETURNING id
), p AS (
    INSERT INTO delivery_payloads (delivery_id, payload) SELECT d.id, $6 FROM d
), n AS (
    SELECT pg_notify('taskhook_deliveries', '')
)
SELECT d.id FROM d CROSS JOIN n;

-- name: batch_deliveries
-- A batch's callback deliveries, oldest first, attempts in order (as task_deliveries).
SELECT d.id, d.webhook_id, d.trigger, d.state, d.created_at,
       coalesce(jsonb_agg(jsonb_build_object(
                    'attempt', a.attempt,
                    'started_at', to_char(a.started_at AT TIME ZONE 'UTC',
                                          'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                    'duration_ms', a.duration_ms, 'status_code', a.status_code,
                    'error', a.error, 'response_excerpt', a.response_excerpt)
                ORDER BY a.attempt) FILTER (WHERE a.delivery_id IS NOT NULL),
                '[]'::jsonb) AS attempts
FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id
WHERE d.batch_id = $1
GROUP BY d.id
ORDER BY d.id;

-- ===== v2 datasets (a dataset is the projects that name it: projects.dataset_id) =====

-- name: v2_datasets
SELECT DISTINCT dataset_id FROM projects
WHERE account_id = $1 AND is_test = $2 AND dataset_id IS NOT NULL
ORDER BY dataset_id;

-- name: v2_dataset_deliveries
-- The deliveries of the dataset's projects: dataset $3 (NULL: every dataset), delivery $4,
-- delivered bounds ($5, $6; exclusive); newest first.
SELECT d.id, d.name, d.delivered_at, p.dataset_id,
       (SELECT count(*) FROM v2_delivery_tasks x WHERE x.delivery_id = d.id) AS task_count
FROM v2_deliveries d JOIN projects p ON p.id = d.project_id
WHERE d.account_id = $1 AND d.is_test = $2 AND p.dataset_id IS NOT NULL
  AND ($3::text IS NULL OR p.dataset_id = $3)
  AND ($4::text IS NULL OR d.id = $4)
  AND ($5::timestamptz IS NULL OR d.delivered_at > $5)
  AND ($6::timestamptz IS NULL OR d.delivered_at < $6)
ORDER BY d.delivered_at DESC, d.id DESC;

-- name: v2_dataset_tasks
-- Delivered tasks of datasets, one row per task and delivery: dataset $3, delivery $4,
-- delivered bounds ($5, $6), task $7 (each NULL: any); keyset paging newest first after
-- ($8, $9) = (delivered_at, task id "|" delivery id), at most $10 rows.
SELECT x.task_id, x.response, x.delivered_at, x.task_id || '|' || d.id AS page_key,
       d.id AS delivery_id, d.name AS delivery_name, d.delivered_at AS delivery_delivered_at,
       p.dataset_id,
       (SELECT count(*) FROM v2_delivery_tasks y WHERE y.delivery_id = d.id) AS task_count
FROM v2_delivery_tasks x
JOIN v2_deliveries d ON d.id = x.delivery_id
JOIN projects p ON p.id = d.project_id
WHERE d.account_id = $1 AND d.is_test = $2 AND p.dataset_id IS NOT NULL
  AND ($3::text IS NULL OR p.dataset_id = $3)
  AND ($4::text IS NULL OR d.id = $4)
  AND ($5::timestamptz IS NULL OR x.delivered_at > $5)
  AND ($6::timestamptz IS NULL OR x.delivered_at < $6)
  AND ($7::text IS NULL OR x.task_id = $7)
  AND ($8::timestamptz IS NULL OR (x.delivered_at, x.task_id || '|' || d.id) < ($8, $9::text))
ORDER BY x.delivered_at DESC, page_key DESC
LIMIT $10;
