"""Scale's v2 task API (issue 8; reference/scale-api-v2.md): a second view of the same
tasks, batches and projects, plus chat tasks, threads and annotations, and deliveries.

models.py     the v2 shapes as pydantic models, mirroring the official SDK's client.v2
serialize.py  rows to v2 JSON through those models
store.py      the v2 named queries (queries.sql, v2 section)
lookup.py     what a request names, by id or name (400 if none, 404 if unknown)
tasks.py      chat task create, metadata, expand, annotations
batches.py    batch create, lifecycle and metadata
ingest.py     the v2 part of event ingest (threads, errors, task.delivered)
deliveries.py deliveries made outside the ingest endpoint (the CLI)
schemas.py    response schemas (GET /v2/schema)
"""
