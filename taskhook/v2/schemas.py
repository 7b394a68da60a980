"""Response schemas (`GET /v2/schema`): the JSON Schema a delivered response follows.

A delivered task (`GET /v2/delivery/tasks`) names the schema of its `response` by
`response_schema_id`. taskhook knows two: the v2 chat result (`threads` or
`sensitive_content_reports`, generated from the models that validate them at ingest) and
any other (v1) response, a JSON object. An id is the first 24 hex digits of the SHA-256 of
the schema's text, so it looks like Scale's ids (MongoDB ObjectIds, 24 hex) and changes
exactly when the schema does.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from taskhook.core.errors import BadRequest, NotFound
from taskhook.core.models_v2 import SensitiveContentReport, Thread

_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


class ChatResponse(BaseModel):
    """The delivered response of a v2 chat task."""

    model_config = ConfigDict(strict=True, extra="forbid", title="Chat task response")

    threads: list[Thread] | None = None
    sensitive_content_reports: list[SensitiveContentReport] | None = None


def _text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, separators=(",", ":"), sort_keys=True)


def _id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


CHAT_SCHEMA = _text(
    {"$schema": "https://json-schema.org/draft/2020-12/schema", **ChatResponse.model_json_schema()}
)
OTHER_SCHEMA = _text(
    {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Task response",
        "description": "The response of a task that is not a v2 chat task (its v1 shape).",
        "type": "object",
    }
)
CHAT_SCHEMA_ID = _id(CHAT_SCHEMA)
OTHER_SCHEMA_ID = _id(OTHER_SCHEMA)
SCHEMAS = {CHAT_SCHEMA_ID: CHAT_SCHEMA, OTHER_SCHEMA_ID: OTHER_SCHEMA}


def schema_id_for(response: Any) -> str:
    if isinstance(response, dict) and (
        "threads" in response or "sensitive_content_reports" in response
    ):
        return CHAT_SCHEMA_ID
    return OTHER_SCHEMA_ID


def get_schema(schema_id: str | None) -> tuple[str, str]:
    """(id, stringified JSON Schema); 400 for a missing or malformed id, 404 for unknown."""
    if not schema_id:
        raise BadRequest("Missing required query parameter 'schema_id'.")
    if not _OBJECT_ID.match(schema_id):
        raise BadRequest(f"'schema_id' has an invalid format: {schema_id!r} (24 hex digits).")
    text = SCHEMAS.get(schema_id)
    if text is None:
        raise NotFound(f"Schema {schema_id} not found.")
    return schema_id, text
