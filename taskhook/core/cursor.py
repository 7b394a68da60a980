"""Opaque, tamper-checked `next_token`s for keyset paging.

A token holds the (created_at, id) of the last row of a page, bound to the account and
world it was issued to, and signed with HMAC-SHA256 under the server's token key (kept
in the database, so every replica accepts every other's tokens).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from taskhook.core.errors import BadRequest

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_BAD = "'next_token' is invalid or was tampered with; start again without it."


def encode(key: bytes, scope: str, created_at: datetime, task_id: str) -> str:
    micros = (created_at - _EPOCH) // _MICRO  # exact: no float rounding
    payload = json.dumps([micros, task_id], separators=(",", ":")).encode()
    mac = hmac.new(key, scope.encode() + b"|" + payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")


def decode(key: bytes, scope: str, token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raise BadRequest(_BAD) from None
    payload, mac = raw[:-16], raw[-16:]
    expected = hmac.new(key, scope.encode() + b"|" + payload, hashlib.sha256).digest()[:16]
    if len(raw) <= 16 or not hmac.compare_digest(mac, expected):
        raise BadRequest(_BAD)
    micros, task_id = json.loads(payload)
    return _EPOCH + micros * _MICRO, str(task_id)
