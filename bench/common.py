"""What the world process, the ceiling loops and the orchestrator share: task references,
task, event and callback bodies of realistic size, Standard Webhooks signing, percentiles,
the loop."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

PROJECT = "bench"
TASK_TYPE = "categorization"
INSTRUCTION = (
    "Look at the whole image and pick the one category that best describes the main object. "
    "If more than one object is present, choose the largest; if unsure, choose 'other'."
)
# Params of a typical categorization task; with the task's other fields and the response,
# a callback body comes to about 1.5 KB.
PARAMS: dict[str, Any] = {
    "attachment": "https://images.example.com/bench/000000000000000000000000.jpg",
    "attachment_type": "image",
    "categories": ["big", "small", "medium", "tiny", "huge", "other"],
    "category_ids": {"big": "c1", "small": "c2", "medium": "c3", "tiny": "c4", "huge": "c5"},
    "allow_multiple": False,
    "layers": {"boxes": [{"label": "hint", "left": 10, "top": 20, "width": 120, "height": 80}]},
    "example_images": [f"https://images.example.com/examples/{i:04d}.jpg" for i in range(4)],
}
RESPONSE: dict[str, Any] = {
    "category": "big",
    "confidence": 0.97,
    "annotations": [{"label": "big", "left": 12, "top": 22, "width": 118, "height": 77}],
}
RESPONSE_JSON = json.dumps(RESPONSE, separators=(",", ":"))
TASK_ID_MARK = "__TASK_ID__"  # replaced by the task id in the ceiling loops' callback bodies


def ref(prefix: str, index: int) -> str:
    """The bench's name for task `index` of a set: an 8-hex set prefix and a 16-hex
    counter (24 hex characters). A task made through the API carries it at the end of its
    callback_url (sink route + ref), so the sink knows which task called back; the task's
    own id is the one the server assigned. The ceilings' SQL rows use it as their id
    (seed.py builds the same in SQL: prefix || lpad(to_hex(g), 16, '0'))."""
    return f"{prefix}{index:016x}"


def task_body_template() -> str:
    """The body of POST /v1/task/<TASK_TYPE>, as text with CALLBACK_MARK where the callback
    URL goes and INDEX_MARK where the task's index goes (metadata.index)."""
    body = {
        "project": PROJECT,
        "instruction": INSTRUCTION,
        "callback_url": CALLBACK_MARK,
        "metadata": {"index": INDEX_MARK, "source": "bench"},
        **PARAMS,
    }
    return json.dumps(body, separators=(",", ":")).replace(f'"{INDEX_MARK}"', INDEX_MARK)


CALLBACK_MARK = "__CALLBACK_URL__"
INDEX_MARK = "__INDEX__"


def event_json(tid: str) -> str:
    """One task.completed event, built as text (cheaper than json.dumps per event)."""
    return (
        f'{{"event_id":"evt-{tid}","type":"task.completed","task_id":"{tid}",'
        f'"occurred_at":"{datetime.now(UTC).isoformat()}","response":{RESPONSE_JSON}}}'
    )


def events_body(tids: Sequence[str]) -> str:
    """A single event object for one task, an array for more."""
    if len(tids) == 1:
        return event_json(tids[0])
    return "[" + ",".join(event_json(t) for t in tids) + "]"


def callback_template() -> str:
    """A callback body as taskhook sends it, with TASK_ID_MARK where the id goes."""
    task = {
        "task_id": TASK_ID_MARK,
        "type": TASK_TYPE,
        "status": "completed",
        "project": PROJECT,
        "instruction": INSTRUCTION,
        "callback_url": "http://127.0.0.1/cb/" + TASK_ID_MARK,
        "params": PARAMS,
        "metadata": {"source": "bench"},
        "created_at": "2026-01-31T12:00:00.000Z",
        "updated_at": "2026-01-31T12:00:01.000Z",
        "completed_at": "2026-01-31T12:00:01.000Z",
        "audits": [],
        "project_param_version": None,
        "work_started": False,
        "is_test": False,
        "response": RESPONSE,
        "customer_review_status": "pending",
    }
    body = {"task": task, "response": RESPONSE, "task_id": TASK_ID_MARK, "status": "completed"}
    return json.dumps(body, separators=(",", ":"))


class Signer:
    """Standard Webhooks headers for one body, as the workforce tooling would send them."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)
        self._count = 0

    def headers(self, body: str) -> dict[str, str]:
        self._count += 1
        msg_id = f"msg_bench_{self._count}"
        now = datetime.now(UTC)
        return {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._webhook.sign(msg_id, now, body),
        }


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(seconds: list[float]) -> dict[str, float | None]:
    """p50/p99/max in milliseconds."""
    values = sorted(seconds)
    ms = {f"p{q}_ms": percentile(values, q) for q in (50, 99)}
    ms["max_ms"] = values[-1] if values else None
    return {k: None if v is None else round(v * 1000, 2) for k, v in ms.items()}


def install_uvloop() -> bool:
    """uvloop where available, as taskhook itself uses it."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
        return True
    return False
