"""Scale's v2 task API: a second view of the same tasks, batches and projects, plus chat
tasks, threads and annotations, and deliveries. The v2 shapes are pydantic models in
taskhook/core/models_v2.py, the v2 queries are in taskhook/core/store/v2.py, the v2 part
of event ingest is taskhook/core/events_v2.py, and the endpoints are taskhook/receiver/v2.

serialize.py  rows to v2 JSON through those models
lookup.py     what a request names, by id or name (400 if none, 404 if unknown)
tasks.py      chat task create, metadata, expand, annotations
batches.py    batch create, lifecycle and metadata
deliveries.py deliveries made outside the ingest endpoint (the CLI)
schemas.py    response schemas (GET /v2/schema)
"""
