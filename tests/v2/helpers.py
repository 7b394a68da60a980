"""Helpers of the v2 tests: blocking SDK calls off the loop, signed ingest, sample threads."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from standardwebhooks.webhooks import Webhook

from tests.conftest import INGEST_SECRET

T = TypeVar("T")
_ids = itertools.count(1)


async def run(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """One blocking SDK call, off the event loop that serves the receiver."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def raises(exc: type[BaseException], fn: Callable[..., Any], /, *args: Any, **kw: Any) -> Any:
    """Run a blocking SDK call that must raise `exc`; returns the exception."""
    try:
        await run(fn, *args, **kw)
    except exc as caught:
        return caught
    raise AssertionError(f"{fn} did not raise {exc.__name__}")


class Ingest:
    """Signed POSTs to /v1/events: (status, parsed JSON)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http, self.url = http, base_url + "/v1/events"

    async def send(self, payload: Any) -> tuple[int, Any]:
        body = json.dumps(payload)
        msg_id, at = f"msg_v2_{next(_ids)}", datetime.now(UTC)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(INGEST_SECRET).sign(msg_id, at, body),
            "Content-Type": "application/json",
        }
        async with self.http.post(self.url, data=body.encode(), headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def ok(self, payload: Any) -> list[dict[str, Any]]:
        status, body = await self.send(payload)
        assert status == 200, body
        return body["results"]  # type: ignore[no-any-return]

    async def applied(self, payload: Any) -> None:
        results = await self.ok(payload)
        assert all(r["status"] == "applied" for r in results), results


def event(type_: str, task_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"evt_v2_{next(_ids)}",
        "type": f"task.{type_}",
        "task_id": task_id,
        **fields,
    }


def ann(id_: str, key: str, type_: str, value: Any, **details: Any) -> dict[str, Any]:
    return {"id": id_, "key": key, "type": type_, "value": value, **details}


# One annotation of every one of the 12 types, each with a well-typed value.
MESSAGE_ANNOTATIONS = [
    ann(
        "an_int",
        "formatting",
        "integer",
        3,
        title="Response Formatting",
        description="Does the response contain issues with formatting?",
        labels=["Major Issues", "Minor Issues", "No Issues"],
        possible_values=[1, 2, 3],
        metadata={"criteria": "formatting rubric"},
    ),
    ann("an_bool", "safe", "boolean", True, possible_values=[True, False]),
    ann("an_text", "comment", "text", "Looks fine.", justification="read it twice"),
    ann("an_cat", "tone", "category", "neutral", possible_values=["neutral", "rude"]),
    ann("an_catm", "topics", "category_multiple", ["a", "b"], possible_values=["a", "b", "c"]),
    ann("an_file", "evidence", "file", [{"url": "https://example.com/f.png", "name": "f.png"}]),
    ann("an_lt", "spans", "labeled_text", [{"label": "PER", "text": "Alice"}]),
    ann("an_rc", "ranking", "ranked_choices", ["x", "y"]),
    ann("an_rg", "groups", "ranked_groups", [["x"], ["y", "z"]]),
    ann("an_rcr", "criterion", "rubric_criteria", {"weight": 1.5, "note": "kept"}),
    ann("an_rr", "rating", "rubric_rating", {"score": 4, "color": "green"}),
    ann(
        "an_ws",
        "workspace",
        "workspace_container",
        {"workspace_id": "w1", "output_files": [{"scale_url": "s3://out/a.py"}]},
    ),
]


def rich_threads() -> list[dict[str, Any]]:
    """Threads with annotations at every level, every annotation type, chunks, rubrics,
    reasoning, model parameters, submissions, and an attachment (stored, never on v2)."""
    return [
        {
            "id": "thread_1",
            "annotations": [ann("an_thread", "overall", "integer", 5)],
            "submissions": [{"submitted_at": "2025-01-02T03:04:05Z", "contributor_id": "c1"}],
            "turns": [
                {
                    "id": "turn_1",
                    "annotations": [ann("an_turn", "preference", "ranked_choices", ["m1", "m2"])],
                    "rubrics": [
                        {
                            "criteria_definitions": [
                                {
                                    "id": "cd1",
                                    "criterion": "Is it correct?",
                                    "weight": 2,
                                    "annotations": [],
                                }
                            ],
                            "max_total_score": 10,
                        }
                    ],
                    "messages": [
                        {
                            "role": "user",
                            "content": {
                                "text": "Hello?",
                                "reference_texts": [{"content": "ref", "url": "https://r"}],
                            },
                            "source_id": "user",
                            "annotations": [],
                        },
                        {
                            "role": "assistant",
                            "content": {
                                "text": "Hi!",
                                "chunks": [
                                    {
                                        "type": "text",
                                        "text": "Hi!",
                                        "annotations": [ann("an_chunk", "ok", "boolean", True)],
                                    }
                                ],
                                "reasoning": [{"content": "think first"}],
                                "attachments": [
                                    {"url": "https://example.com/a.png", "file_size_in_bytes": 12}
                                ],
                            },
                            "source_id": "base_model",
                            "model_parameters": {
                                "model": "my-model-123",
                                "temperature": 0.9,
                                "max_completion_tokens": 1000,
                                "top_p": 0.9,
                                "top_k": 4,
                            },
                            "annotations": MESSAGE_ANNOTATIONS,
                            "rubric_evaluations": [
                                {
                                    "criteria_evaluations": [
                                        {"criterion_definition_id": "cd1", "score": 1}
                                    ],
                                    "total_score": 1,
                                    "percentage": 50.0,
                                }
                            ],
                        },
                    ],
                }
            ],
        }
    ]
