"""Account secrets at rest: the callback auth key and the signing secrets are encrypted with
AES-256-GCM under one server key (API keys are not here: they are only ever hashed).

The key comes from TASKHOOK_SECRET_KEY (base64 of 32 bytes), or is generated once and kept
in data_dir/secret_key, as the ingest secret is. Processes that share a database must share
the key: the database keeps a check value of the key it was used with, and a process with
another key refuses to start instead of failing every callback later. Each ciphertext is
bound to its account and purpose (the AEAD's associated data), so a value copied to another
row or column does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from taskhook.core import store
from taskhook.core.delivery import Claimed
from taskhook.core.settings import Settings
from taskhook.core.store import Connection

FILE_NAME = "secret_key"
# What a ciphertext is (its associated data, with the account id).
AUTH_KEY = "callback_auth_key"
SIGNING_SECRET = "signing_secret"  # noqa: S105 (a label, not a secret)
_NONCE = 12
_CHECK_LABEL = b"taskhook secret key check v1"
_OPENED_MAX = 4096  # decrypted secrets kept per process (a few per account)


class SecretKeyError(Exception):
    """The secret key is malformed, or is not the key this database's secrets use."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SecretKeyError("TASKHOOK_SECRET_KEY must be base64 of 32 random bytes.")
        self._aead = AESGCM(key)
        self.check = hmac.new(key, _CHECK_LABEL, hashlib.sha256).digest()
        # The dispatcher opens the same few accounts' secrets for every delivery it claims.
        self._opened: dict[tuple[bytes, str, str], str] = {}

    def seal(self, text: str, account_id: str, purpose: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, text.encode(), _label(account_id, purpose))

    def open(self, blob: bytes, account_id: str, purpose: str) -> str:
        """The plaintext of `blob`; remembered (a rotated secret is a new blob)."""
        key = (blob, account_id, purpose)
        text = self._opened.get(key)
        if text is None:
            if len(self._opened) >= _OPENED_MAX:
                self._opened.clear()
            text = self._opened[key] = self._open(blob, account_id, purpose)
        return text

    def _open(self, blob: bytes, account_id: str, purpose: str) -> str:
        try:
            plain = self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], _label(account_id, purpose))
        except InvalidTag:
            raise SecretKeyError(f"{purpose} of {account_id} does not decrypt") from None
        return plain.decode()


def _label(account_id: str, purpose: str) -> bytes:
    return f"{account_id}/{purpose}".encode()


def parse_key(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SecretKeyError("TASKHOOK_SECRET_KEY must be base64 of 32 random bytes.") from None


def new_key_text() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def load_or_create(settings: Settings) -> SecretBox:
    """The key from the settings, else from data_dir (created there, readable by us only)."""
    if settings.secret_key:
        return SecretBox(parse_key(settings.secret_key))
    path = Path(settings.data_dir).expanduser() / FILE_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(new_key_text() + "\n")
    return SecretBox(parse_key(path.read_text()))


async def bind(conn: Connection, box: SecretBox) -> None:
    """Check the key against the database's (recording it the first time), and encrypt the
    plaintext secret columns of a database made before secrets were encrypted."""
    async with conn.transaction():
        stored = await store.claim_secret_key_check(conn, box.check)
        if not hmac.compare_digest(stored, box.check):
            raise SecretKeyError(
                "TASKHOOK_SECRET_KEY is not the key this database's account secrets were "
                "encrypted with; set the same key in every taskhook process."
            )
        await _encrypt_legacy_secrets(conn, box)


async def _encrypt_legacy_secrets(conn: Connection, box: SecretBox) -> None:
    """A database from before secrets were encrypted: encrypt them, drop the plaintext."""
    rows = await store.plaintext_secrets(conn)
    if rows is None:
        return
    for r in rows:
        auth_key = box.seal(r["callback_auth_key"], r["id"], AUTH_KEY)
        signing = box.seal(r["signing_secret"], r["id"], SIGNING_SECRET)
        await store.store_encrypted_secrets(conn, r["id"], auth_key, signing)
    await store.drop_plaintext_secrets(conn)


def open_claims(box: SecretBox, rows: list[asyncpg.Record]) -> list[Claimed]:
    """Claimed rows with their account's secrets opened, ready to sign and send."""
    return [
        Claimed(
            id=r["id"],
            task_id=r["task_id"],
            account_id=r["account_id"],
            trigger=r["trigger"],
            target=r["target"],
            host=r["host"],
            payload=r["payload"],
            webhook_id=r["webhook_id"],
            attempt=r["attempts"],
            lease_token=r["lease_token"],
            callback_auth_key=box.open(r["callback_auth_key_enc"], r["account_id"], AUTH_KEY),
            signing_secrets=_signing_secrets(box, r),
            created_at=r["created_at"],
        )
        for r in rows
    ]


def _signing_secrets(box: SecretBox, r: asyncpg.Record) -> tuple[str, ...]:
    """The current secret, and the previous one while a rotation's grace period runs."""
    blobs = (r["signing_secret_enc"], r["old_signing_secret_enc"])
    return tuple(box.open(b, r["account_id"], SIGNING_SECRET) for b in blobs if b is not None)


async def open_bound(pool: asyncpg.Pool, settings: Settings) -> SecretBox:
    """The process's box, checked against (and bound to) the database."""
    box = load_or_create(settings)
    async with pool.acquire() as conn:
        await bind(conn, box)
    return box
