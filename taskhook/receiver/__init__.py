"""The receiver: the aiohttp application (customer Task API, event ingest, ops endpoints)."""
