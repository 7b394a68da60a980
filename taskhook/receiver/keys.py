"""Application state only the receiver's app holds (aiohttp AppKeys)."""

from __future__ import annotations

from aiohttp import web
from standardwebhooks.webhooks import Webhook

from taskhook.receiver.group_commit import GroupCommitter

INGEST = web.AppKey("ingest", Webhook)  # verifies POST /v1/events
GROUP_COMMIT = web.AppKey("group_commit", GroupCommitter)  # shares ingest transactions
# Tests set it: every 200 JSON reply is validated against its declared type (routes.py).
VALIDATE_REPLIES = web.AppKey("validate_replies", bool)
