-- 001 baseline: the schema as one idempotent script, before numbered migrations.
--
-- Databases made before migrations/ existed were built and upgraded by this script (it was
-- schema.sql): every statement is idempotent, so it brings any of them, of any earlier
-- version, to the shape migration 002 starts from. Its statements stay as they were; new changes are
-- new numbered files, and schema.sql shows the final shape.

-- One row of server-wide secrets, made once. `token_key` signs list cursors
-- (`next_token`) so that every replica accepts the tokens of every other.
CREATE TABLE IF NOT EXISTS server_secrets (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    token_key   bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- HMAC of the secret key's check label: which key the account secrets are encrypted with.
ALTER TABLE server_secrets ADD COLUMN IF NOT EXISTS secret_key_check bytea;
INSERT INTO server_secrets (token_key)
-- gen_random_uuid() draws from the server's strong random source (PostgreSQL 13+).
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'))
ON CONFLICT (id) DO NOTHING;

-- The secrets of an account are stored encrypted (taskhook/core/secretbox.py: AES-256-GCM under
-- TASKHOOK_SECRET_KEY, bound to the account and purpose). Databases made before that kept
-- them in plaintext columns, which secretbox.bind encrypts and drops at the next start.
CREATE TABLE IF NOT EXISTS accounts (
    id                   text PRIMARY KEY,              -- "acct_" + 24 hex
    name                 text NOT NULL,
    -- Used for tasks created without a callback_url (Scale's profile default).
    default_callback_url text,
    created_at           timestamptz NOT NULL DEFAULT now()
);
-- Sent verbatim as the `scale-callback-auth` header on every callback.
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS callback_auth_key_enc bytea;
-- Standard Webhooks signing secret ("whsec_..."), signs every callback. After a rotation
-- the previous one also signs (a second signature) until old_secret_until.
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS signing_secret_enc bytea;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS old_signing_secret_enc bytea;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS old_secret_until timestamptz;

-- API keys are stored only as SHA-256 digests: keys are 128-bit random, so a fast
-- hash is enough (no password stretching needed) and lookup is one index probe.
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash    bytea PRIMARY KEY,
    account_id  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    is_test     boolean NOT NULL,
    -- First characters of the key ("live_1a2b"), to tell keys apart in listings.
    key_prefix  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_account_idx ON api_keys (account_id);

CREATE TABLE IF NOT EXISTS projects (
    id             bigserial PRIMARY KEY,
    account_id     text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    is_test        boolean NOT NULL,
    name           text NOT NULL,
    type           text NOT NULL,
    -- [{"version": n, "created_at": ..., <params>}, ...]; the last entry is current.
    param_history  jsonb NOT NULL DEFAULT '[]',
    rapid          boolean NOT NULL DEFAULT false,
    studio         boolean NOT NULL DEFAULT false,
    dataset_id     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, is_test, name)
);

-- Batch status: 'staging' (rapid/studio projects, until finalized) or
-- 'in_progress'; 'completed' is derived when read (finalized and nothing pending).
CREATE TABLE IF NOT EXISTS batches (
    id                 bigserial PRIMARY KEY,
    account_id         text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    is_test            boolean NOT NULL,
    project_id         bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name               text NOT NULL,
    status             text NOT NULL DEFAULT 'in_progress'
                       CHECK (status IN ('staging', 'in_progress')),
    callback           text NOT NULL DEFAULT '',
    calibration_batch  boolean NOT NULL DEFAULT false,
    self_label_batch   boolean NOT NULL DEFAULT false,
    metadata           jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, is_test, name)
);
-- Serves the batch list (filter by project, newest first).
CREATE INDEX IF NOT EXISTS batches_list_idx
    ON batches (account_id, is_test, created_at DESC, id DESC);

-- Task status: 'pending' (queued or in progress, see work_started), 'completed',
-- 'canceled', 'error'. Project and batch names are copied onto the task (names never
-- change), so every list filter is a plain column test with no join.
CREATE TABLE IF NOT EXISTS tasks (
    id                        text PRIMARY KEY,          -- 24 hex, like Scale's ids
    account_id                text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    is_test                   boolean NOT NULL,
    type                      text NOT NULL,
    status                    text NOT NULL DEFAULT 'pending'
                              CHECK (status IN ('pending', 'completed', 'canceled', 'error')),
    project                   text,                      -- NULL: the task has no project
    batch                     text,
    instruction               text,
    callback_url              text,
    params                    jsonb NOT NULL DEFAULT '{}',
    response                  jsonb,
    metadata                  jsonb NOT NULL DEFAULT '{}',
    tags                      text[],                    -- NULL until tags are first set
    unique_id                 text,                      -- NULL once cleared
    clear_unique_id_on_error  boolean NOT NULL DEFAULT false,
    priority                  integer,
    project_param_version     integer,
    work_started              boolean NOT NULL DEFAULT false,
    callback_succeeded        boolean,                   -- NULL while unresolved
    customer_review_status    text
                              CHECK (customer_review_status IN
                                     ('pending', 'accepted', 'fixed', 'rejected', 'commented')),
    customer_review_comments  jsonb,                     -- array of strings, appended
    prior_responses           jsonb,                     -- array of responses, appended
    audits                    jsonb NOT NULL DEFAULT '[]',
    times_redone              integer NOT NULL DEFAULT 0,
    created_at                timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at                timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at              timestamptz
);
-- Databases made when every task needed a project.
ALTER TABLE tasks ALTER COLUMN project DROP NOT NULL;
-- unique_id is unique per account and world while set.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_unique_id_idx
    ON tasks (account_id, is_test, unique_id) WHERE unique_id IS NOT NULL;
-- Keyset paging, newest first: the list query orders by (created_at, id) DESC.
CREATE INDEX IF NOT EXISTS tasks_list_idx
    ON tasks (account_id, is_test, created_at DESC, id DESC);
-- The same, for the SDK's get_tasks, which always filters by project or batch.
CREATE INDEX IF NOT EXISTS tasks_project_list_idx
    ON tasks (account_id, is_test, project, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS tasks_batch_list_idx
    ON tasks (account_id, is_test, batch, created_at DESC, id DESC) WHERE batch IS NOT NULL;

-- Idempotency-Key records (Stripe-style, 24 h). A row is 'in_flight' while the
-- first request runs; its response is saved in the same transaction that creates
-- the task, so a saved response and the task it describes exist together or not at all.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    account_id     text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    is_test        boolean NOT NULL,
    key            text NOT NULL,
    request_hash   bytea NOT NULL,                       -- SHA-256 of method, path and body
    state          text NOT NULL DEFAULT 'in_flight' CHECK (state IN ('in_flight', 'done')),
    status_code    integer,
    response_body  text,
    locked_until   timestamptz NOT NULL,                 -- an in-flight claim older than this is stale
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, is_test, key)
);
-- Serves pruning of keys older than 24 hours.
CREATE INDEX IF NOT EXISTS idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Ingested workforce events: the event_id makes a repeat a no-op.
CREATE TABLE IF NOT EXISTS ingested_events (
    event_id     text PRIMARY KEY,
    task_id      text NOT NULL,
    type         text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ingested_events_received_idx ON ingested_events (received_at);

-- Callback deliveries. One row per callback trigger; retries are attempts
-- of the same delivery and share its webhook_id.
-- state: 'waiting' (an earlier delivery of the same task is unfinished: per-task order),
-- 'pending' (due at next_attempt_at), 'sending' (claimed under a lease), 'succeeded',
-- 'failed' (retries exhausted or given up). Finishing a delivery makes the task's next
-- 'waiting' one 'pending', so the claim never has to look for earlier deliveries.
CREATE TABLE IF NOT EXISTS deliveries (
    id               bigserial PRIMARY KEY,
    task_id          text REFERENCES tasks (id) ON DELETE CASCADE,  -- NULL: a batch's
    account_id       text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    trigger          text NOT NULL
                     CHECK (trigger IN ('completed', 'error', 'audit', 'fixed', 'recalled', 'resend',
                                        'batch_completed')),
    target           text NOT NULL,                      -- URL or e-mail address
    host             text NOT NULL,                      -- URL host or "mailto:" + domain
    -- The body is in delivery_payloads (below).
    webhook_id       text NOT NULL,                      -- "msg_" + random; stable across retries
    state            text NOT NULL DEFAULT 'pending'
                     CONSTRAINT deliveries_state_check
                     CHECK (state IN ('waiting', 'pending', 'sending', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    lease_token      uuid,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz
);
-- Databases made before the 'waiting' state existed: widen the state check once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'deliveries_state_check'
                     AND pg_get_constraintdef(oid) LIKE '%waiting%') THEN
        ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_state_check;
        ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
            CHECK (state IN ('waiting', 'pending', 'sending', 'succeeded', 'failed'));
    END IF;
END $$;
-- The callback body of each delivery, exactly as it is sent and signed, written once. Not a
-- column of deliveries: a delivery row is written whole again at its claim and at its
-- outcome, and with the body inline (~1.5 KB) that copy was most of each write and of the
-- WAL (a drain cost PostgreSQL 40 % more CPU with it; bodies under ~2 KB are never moved
-- out of line by TOAST). Text, not jsonb: jsonb would be parsed on every insert, printed
-- back on every claim, and its binary form is larger.
CREATE TABLE IF NOT EXISTS delivery_payloads (
    delivery_id  bigint PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    payload      text NOT NULL
);
-- Databases made when the body was a column of deliveries (text, or jsonb before that):
-- move every body into delivery_payloads once (as jsonb printed it, for the older ones).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_name = 'deliveries' AND column_name = 'payload'
                 AND table_schema = current_schema()) THEN
        INSERT INTO delivery_payloads (delivery_id, payload)
        SELECT id, payload::text FROM deliveries
        ON CONFLICT (delivery_id) DO NOTHING;
        ALTER TABLE deliveries DROP COLUMN payload;
    END IF;
END $$;
-- The hot queue: vacuum after every ~5,000 dead rows (not 20 % of the table), so claims
-- do not walk the dead index entries that earlier claims left.
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.0,
                            autovacuum_vacuum_threshold = 5000,
                            autovacuum_analyze_scale_factor = 0.05);
-- The claim walks unfinished rows per host in due order (a skip scan over the hosts, then
-- a range per host); a partial index keeps it small. It replaced deliveries_due_idx (one
-- global due order), whose scans walked every due row of a host at its in-flight cap.
CREATE INDEX IF NOT EXISTS deliveries_host_due_idx
    ON deliveries (host, next_attempt_at, id) WHERE state IN ('pending', 'sending');
DROP INDEX IF EXISTS deliveries_due_idx;
-- Deliveries waiting behind an earlier one of their task: few, counted for the metrics.
CREATE INDEX IF NOT EXISTS deliveries_waiting_idx
    ON deliveries (task_id) WHERE state = 'waiting';
-- Retention prunes finished deliveries oldest first (store.prune), through this range.
CREATE INDEX IF NOT EXISTS deliveries_finished_idx
    ON deliveries (finished_at) WHERE finished_at IS NOT NULL;
-- Per-task listing and the per-task order rule (earlier unfinished delivery first).
CREATE INDEX IF NOT EXISTS deliveries_task_idx ON deliveries (task_id, id);

-- A 429/503 with Retry-After pauses every delivery to that host, not just one message.
CREATE TABLE IF NOT EXISTS host_pauses (
    host          text PRIMARY KEY,
    paused_until  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS delivery_attempts (
    delivery_id       bigint NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt           integer NOT NULL,
    started_at        timestamptz NOT NULL,
    duration_ms       integer NOT NULL,
    status_code       integer,
    error             text,                              -- error class, e.g. "timeout"
    response_excerpt  text NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, attempt)
);
-- Serves pruning of old attempt records.
CREATE INDEX IF NOT EXISTS delivery_attempts_started_idx ON delivery_attempts (started_at);

-- The first statement of an ingest group (events.apply_groups), one round trip for two
-- steps. First every task of the group is locked and read, in id order: two groups about
-- the same tasks then wait for each other instead of deadlocking. Ingest is account-blind
-- (task ids are global); the account's default callback URL comes along. Only what the
-- checks and the callback target need: decoding every task's jsonb columns (params,
-- metadata, ...) cost serve more than the rest of the statement. Then the group's event ids
-- are claimed at once, after the locks (a VOLATILE function takes a new snapshot for each
-- statement); the ids returned are new. An id seen before (or twice in this group: DO
-- NOTHING covers rows of the same command) is not.
CREATE OR REPLACE FUNCTION taskhook_lock_and_claim(
    p_task_ids text[], p_event_ids text[], p_event_task_ids text[], p_event_types text[]
) RETURNS TABLE (id text, account_id text, status text, callback_url text, is_test boolean,
                 account_callback_url text, event_id text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT t.id, t.account_id, t.status, t.callback_url, t.is_test, a.default_callback_url,
           NULL::text
    FROM tasks t JOIN accounts a ON a.id = t.account_id
    WHERE t.id = ANY (p_task_ids)
    ORDER BY t.id
    FOR UPDATE OF t;
    RETURN QUERY
    WITH claimed AS (
        INSERT INTO ingested_events (event_id, task_id, type)
        SELECT * FROM unnest(p_event_ids, p_event_task_ids, p_event_types)
        ON CONFLICT (event_id) DO NOTHING
        RETURNING ingested_events.event_id
    )
    SELECT NULL::text, NULL::text, NULL::text, NULL::text, NULL::boolean, NULL::text,
           claimed.event_id
    FROM claimed;
END
$$;

-- Outcome writes (store.record_attempts), one round trip per batch. The batch's tasks are
-- locked first, in id order as ingest locks them; the write then runs with a snapshot taken
-- after the locks (a VOLATILE function takes a new one for each statement): a delivery that
-- ingest enqueued as 'waiting' behind one of these, in a transaction still open when this
-- began, is then seen and made due, and callback_succeeded is not set over it. Each row is
-- fenced by its lease token: a dispatcher whose lease was taken over writes nothing for
-- that row and learns it from the ids returned. A task's callback_succeeded follows its
-- latest delivery only (per-task order: at most one delivery of a task is in flight).
-- One round trip instead of four (BEGIN, the lock, the write, COMMIT). Its statements keep
-- one generic plan each, made under the session's pinned planner settings (db.PINNED_PLANS)
-- and written so that the only index serving each lookup is the intended one
-- (tests/test_hot_plans.py).
CREATE OR REPLACE FUNCTION taskhook_record_attempts(
    p_task_ids text[], p_ids bigint[], p_lease_tokens uuid[], p_states text[],
    p_delays float8[], p_started_ats timestamptz[], p_durations int[],
    p_status_codes int[], p_errors text[], p_excerpts text[]
) RETURNS SETOF bigint LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM 1 FROM tasks WHERE tasks.id = ANY (p_task_ids) ORDER BY tasks.id FOR UPDATE;
    RETURN QUERY
    WITH o AS (
        SELECT *
        FROM unnest(p_ids, p_lease_tokens, p_states, p_delays, p_started_ats, p_durations,
                    p_status_codes, p_errors, p_excerpts)
             AS o(id, lease_token, state, delay, started_at, duration_ms, status_code, error,
                  excerpt)
    ), d AS (
        UPDATE deliveries
        SET state = o.state,
            next_attempt_at = CASE WHEN o.delay IS NULL THEN deliveries.next_attempt_at
                                   ELSE now() + make_interval(secs => o.delay) END,
            lease_token = NULL, lease_until = NULL,
            finished_at = CASE WHEN o.state IN ('succeeded', 'failed') THEN now() END
        FROM o
        -- = ANY: each row is a primary-key probe, whatever size the table is believed to
        -- have (joined to o alone, a plan that believes it small walks all of it).
        WHERE deliveries.id = ANY (p_ids)
          AND deliveries.id = o.id AND deliveries.lease_token = o.lease_token
        RETURNING deliveries.id, deliveries.task_id, deliveries.attempts, o.state, o.started_at,
                  o.duration_ms, o.status_code, o.error, o.excerpt
    ), a AS (
        INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms,
                                       status_code, error, response_excerpt)
        SELECT id, attempts, started_at, duration_ms, status_code, error, excerpt FROM d
        ON CONFLICT (delivery_id, attempt) DO NOTHING
    ), t AS (
        UPDATE tasks SET callback_succeeded = (d.state = 'succeeded')
        FROM d
        WHERE tasks.id = ANY (p_task_ids) AND tasks.id = d.task_id AND d.state IN ('succeeded', 'failed')
          -- d is the task's latest delivery. Counted with a FILTER, so that the only index
          -- serving the count is deliveries_task_idx: "later.id > d.id" as a condition is
          -- also a range of the primary key, all of which follows an old delivery.
          AND (SELECT count(*) FILTER (WHERE later.id > d.id) FROM deliveries later
               WHERE later.task_id = d.task_id) = 0
    ), next_up AS (
        -- The finished delivery's successor (the task's oldest waiting one) becomes due.
        UPDATE deliveries SET state = 'pending', next_attempt_at = now()
        -- min() with a FILTER: a plain min() may be answered by walking the primary key
        -- in order until a row of this task turns up (a plan made on a small table picks
        -- that and keeps it as the table grows); with the FILTER, the only index that
        -- serves the query is deliveries_task_idx, and the task's few deliveries are read.
        -- = ANY (ARRAY(...)), not IN: a primary-key probe per successor, where a join to
        -- d may walk the whole table under a plan that believes it small.
        WHERE id = ANY (ARRAY(SELECT (SELECT min(w.id) FILTER (WHERE w.state = 'waiting')
                                      FROM deliveries w WHERE w.task_id = d.task_id)
                              FROM d WHERE d.state IN ('succeeded', 'failed')))
    )
    SELECT d.id FROM d;
END
$$;

-- ===== v2 API =====
-- The v2 API names projects and batches by id (v1 names them by name): a random 24-hex id,
-- given to existing rows once (a volatile default is evaluated per row) and to new ones by
-- default, so v1 inserts need not know about it.
ALTER TABLE projects ADD COLUMN IF NOT EXISTS public_id text NOT NULL
    DEFAULT substr(replace(gen_random_uuid()::text, '-', ''), 1, 24);
CREATE UNIQUE INDEX IF NOT EXISTS projects_public_id_idx ON projects (public_id);
ALTER TABLE batches ADD COLUMN IF NOT EXISTS public_id text NOT NULL
    DEFAULT substr(replace(gen_random_uuid()::text, '-', ''), 1, 24);
CREATE UNIQUE INDEX IF NOT EXISTS batches_public_id_idx ON batches (public_id);

-- v2 batch statuses: 'paused' (pause_batch; resume goes back to 'in_progress') and
-- 'cancelled' (two l's, as Scale spells it for batches; final). Widen the check once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'batches_status_check'
                     AND pg_get_constraintdef(oid) LIKE '%cancelled%') THEN
        ALTER TABLE batches DROP CONSTRAINT IF EXISTS batches_status_check;
        ALTER TABLE batches ADD CONSTRAINT batches_status_check
            CHECK (status IN ('staging', 'in_progress', 'paused', 'cancelled'));
    END IF;
END $$;

-- Result deliveries (v2 `Delivery`): a named set of completed tasks of one project, made by
-- the operator (`task.delivered` ingest events). Not the callback `deliveries` above.
CREATE TABLE IF NOT EXISTS v2_deliveries (
    id            text PRIMARY KEY,                      -- 24 hex
    account_id    text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    is_test       boolean NOT NULL,
    project_id    bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name          text NOT NULL,
    delivered_at  timestamptz NOT NULL,                  -- when its first task was delivered
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (account_id, is_test, project_id, name)
);
-- Serves get_deliveries (a project's deliveries, newest first).
CREATE INDEX IF NOT EXISTS v2_deliveries_project_idx
    ON v2_deliveries (project_id, delivered_at DESC, id DESC);

-- The tasks of a delivery, each with its response as it was when delivered.
CREATE TABLE IF NOT EXISTS v2_delivery_tasks (
    delivery_id   text NOT NULL REFERENCES v2_deliveries (id) ON DELETE CASCADE,
    task_id       text NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    response      jsonb,
    delivered_at  timestamptz NOT NULL,
    PRIMARY KEY (delivery_id, task_id)
);
-- Serves get_delivery_tasks (a task's latest delivery).
CREATE INDEX IF NOT EXISTS v2_delivery_tasks_task_idx
    ON v2_delivery_tasks (task_id, delivered_at DESC);

-- Where each annotation lives (GET /v2/annotation): written when an ingested completion or
-- fix carries threads. The annotation itself is read from the task's response.
CREATE TABLE IF NOT EXISTS v2_annotations (
    account_id     text NOT NULL,
    is_test        boolean NOT NULL,
    annotation_id  text NOT NULL,
    task_id        text NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, is_test, annotation_id)
);

-- Files uploaded (POST /v1/files/upload) or imported from a URL (POST /v1/files/import).
-- The bytes live on disk (taskhook/core/files.py) under the file's id; the row is written only
-- once they are in place, so a row never names a missing file. The attachment_url served
-- for a file carries `token`, so a labeling tool or an <img> can fetch it without an API
-- key, as Scale's attachment URLs work; the metadata needs the account's key.
CREATE TABLE IF NOT EXISTS files (
    id            text PRIMARY KEY,                       -- 24 hex, like a task id
    account_id    text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    is_test       boolean NOT NULL,
    token         text NOT NULL,                          -- 32 hex, in the attachment_url
    display_name  text,
    project_name  text,
    reference_id  text,                                   -- unique per account and world
    metadata      jsonb NOT NULL DEFAULT '{}',
    mimetype      text NOT NULL,
    size          bigint NOT NULL,
    sha256        text NOT NULL,
    source_url    text,                                   -- an import's URL
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS files_reference_id_idx
    ON files (account_id, is_test, reference_id) WHERE reference_id IS NOT NULL;

-- The account's team (Scale's Teams API): people by e-mail, each with a role; labelers are
-- the workforce that Studio assignments and project groups name. One team per account, as
-- the account's settings: both worlds see it, and changing it needs a live key.
CREATE TABLE IF NOT EXISTS teammates (
    id          text PRIMARY KEY,                         -- 24 hex; a group worker's id
    account_id  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email       text NOT NULL,                            -- lower case
    role        text NOT NULL CHECK (role IN ('labeler', 'member', 'manager', 'admin')),
    invited_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (account_id, email)
);

-- Studio (Scale's tools for a customer's own workforce), per world: which labelers work on
-- which projects, the named groups of them within a project, the groups each batch is
-- given to, and the order in which batches are worked (studio_priority, NULL: after the
-- ranked ones, oldest first). taskhook/receiver/v1/studio_api.py has the rules.
CREATE TABLE IF NOT EXISTS studio_assignments (
    project_id   bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    teammate_id  text NOT NULL REFERENCES teammates (id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, teammate_id)
);
CREATE TABLE IF NOT EXISTS project_groups (
    id          text PRIMARY KEY,                         -- 24 hex
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (project_id, name)
);
CREATE TABLE IF NOT EXISTS project_group_members (
    group_id     text NOT NULL REFERENCES project_groups (id) ON DELETE CASCADE,
    teammate_id  text NOT NULL REFERENCES teammates (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, teammate_id)
);
CREATE TABLE IF NOT EXISTS batch_groups (
    batch_id  bigint NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    group_id  text NOT NULL REFERENCES project_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (batch_id, group_id)
);
ALTER TABLE batches ADD COLUMN IF NOT EXISTS studio_priority integer;

-- Evaluation and training tasks (create_evaluation_task, create_training_task): a task's
-- params with the answer it expects, kept on their project for the workforce's tooling.
-- They are not tasks: never listed with them, never worked, never called back.
CREATE TABLE IF NOT EXISTS quality_tasks (
    id                 text PRIMARY KEY,                  -- 24 hex
    account_id         text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    is_test            boolean NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('evaluation', 'training')),
    type               text NOT NULL,
    project_id         bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    instruction        text,
    params             jsonb NOT NULL,
    expected_response  jsonb NOT NULL,
    initial_response   jsonb,                             -- evaluation only: a review phase
    metadata           jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Serves a project's list, oldest first.
CREATE INDEX IF NOT EXISTS quality_tasks_project_idx
    ON quality_tasks (project_id, kind, created_at, id);

-- Batch callbacks: once a batch with a callback completes (in progress, with tasks, none
-- pending), a dispatcher queues one delivery of it (batch_id set, task_id NULL) with the
-- batch as GET /v1/batches/{name} returns it, and marks the batch (callback_queued_at) in
-- the same transaction, so it is sent once. The delivery then goes the way of every other:
-- claims, retries, signatures, the attempt log. It belongs to no task, so no task's order
-- waits on it and no task's callback_succeeded counts it.
ALTER TABLE deliveries ALTER COLUMN task_id DROP NOT NULL;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS batch_id bigint
    REFERENCES batches (id) ON DELETE CASCADE;
CREATE INDEX IF NOT EXISTS deliveries_batch_idx ON deliveries (batch_id)
    WHERE batch_id IS NOT NULL;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'deliveries_trigger_check'
                     AND pg_get_constraintdef(oid) LIKE '%batch_completed%') THEN
        ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_trigger_check;
        ALTER TABLE deliveries ADD CONSTRAINT deliveries_trigger_check
            CHECK (trigger IN ('completed', 'error', 'audit', 'fixed', 'recalled', 'resend',
                               'batch_completed'));
    END IF;
END $$;
ALTER TABLE batches ADD COLUMN IF NOT EXISTS callback_queued_at timestamptz;
-- The batches whose callback may still be due: few, whatever the number of batches.
CREATE INDEX IF NOT EXISTS batches_callback_due_idx ON batches (id)
    WHERE callback <> '' AND callback_queued_at IS NULL;

-- ===== Tasks tab =====
-- Sign-in sessions of the Tasks tab. The cookie holds a random token; only its SHA-256 is
-- stored, so a copy of the database cannot be replayed as a cookie. A session belongs to the
-- API key that opened it (its world is the key's) and ends when that key is revoked or
-- deleted, at expires_at, or at sign-out.
CREATE TABLE IF NOT EXISTS web_sessions (
    token_hash  bytea PRIMARY KEY,                       -- SHA-256 of the cookie's token
    key_hash    bytea NOT NULL REFERENCES api_keys (key_hash) ON DELETE CASCADE,
    account_id  text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    is_test     boolean NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
-- Serves pruning of expired sessions.
CREATE INDEX IF NOT EXISTS web_sessions_expires_idx ON web_sessions (expires_at);

-- The digest of the schema.sql last applied (db.migrate). A start against a current
-- schema reads it and skips the script: the script's CREATE INDEX IF NOT EXISTS and
-- ALTER TABLE take table locks even when they change nothing, held to its end, and a
-- replica starting beside running ones deadlocked with their claims (seen in the bench's
-- scale-out, 2 receivers + 2 dispatchers starting together).
CREATE TABLE IF NOT EXISTS schema_state (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    digest     text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
