"""Accounts and API keys: creation, listing, new keys, and resolving a presented key to
its account."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from taskhook.core import store
from taskhook.core.principal import Principal
from taskhook.core.secretbox import AUTH_KEY, SIGNING_SECRET, SecretBox
from taskhook.core.store import Connection


@dataclass(frozen=True, slots=True)
class NewAccount:
    account_id: str
    name: str
    live_key: str
    test_key: str
    callback_auth_key: str
    signing_secret: str

    def as_json(self) -> dict[str, str]:
        return {
            "account_id": self.account_id,
            "name": self.name,
            "live_key": self.live_key,
            "test_key": self.test_key,
            "callback_auth_key": self.callback_auth_key,
            "signing_secret": self.signing_secret,
        }


# The longest grace period of a signing-secret rotation (the old secret keeps signing).
MAX_GRACE_SECONDS = 7 * 24 * 3600


def hash_key(key: str) -> bytes:
    """Keys are 128-bit random, so one SHA-256 is enough to store them safely.

    surrogatepass: a header that is not UTF-8 arrives with surrogates; it must hash
    (and match no key, so 401), not raise.
    """
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _new_key(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def new_signing_secret() -> str:
    # Standard Webhooks secrets are "whsec_" + base64 of 24 to 64 random bytes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def create_account(conn: Connection, name: str, box: SecretBox) -> NewAccount:
    """Create an account with one live key, one test key and its callback secrets (stored
    encrypted; the keys only as digests). The plaintext is returned to be shown once."""
    account = NewAccount(
        account_id=f"acct_{secrets.token_hex(12)}",
        name=name,
        live_key=_new_key("live"),
        test_key=_new_key("test"),
        callback_auth_key=secrets.token_urlsafe(24),
        signing_secret=new_signing_secret(),
    )
    async with conn.transaction():
        await store.insert_account(
            conn,
            account.account_id,
            name,
            box.seal(account.callback_auth_key, account.account_id, AUTH_KEY),
            box.seal(account.signing_secret, account.account_id, SIGNING_SECRET),
        )
        for key, is_test in ((account.live_key, False), (account.test_key, True)):
            await store.insert_api_key(conn, hash_key(key), account.account_id, is_test, key[:9])
    return account


async def authenticate(conn: Connection | asyncpg.Pool, key: str) -> Principal | None:
    row = await store.authenticate(conn, hash_key(key))
    if row is None:
        return None
    return Principal(
        account_id=row["account_id"],
        account_name=row["name"],
        is_test=row["is_test"],
        default_callback_url=row["default_callback_url"],
    )


@dataclass(frozen=True, slots=True)
class KeyListing:
    """What is known of a key once made: its first characters, never the key."""

    prefix: str
    is_test: bool
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class AccountListing:
    account_id: str
    name: str
    created_at: datetime
    keys: tuple[KeyListing, ...]

    def prefixes(self, *, revoked: bool = False) -> list[str]:
        return [k.prefix for k in self.keys if (k.revoked_at is not None) == revoked]


async def list_accounts(conn: Connection | asyncpg.Pool) -> list[AccountListing]:
    """Every account, oldest first, with its keys' prefixes, oldest first."""
    grouped: dict[str, tuple[str, datetime, list[KeyListing]]] = {}
    for row in await store.list_accounts(conn):
        _, _, keys = grouped.setdefault(row["id"], (row["name"], row["created_at"], []))
        if row["key_prefix"] is not None:
            keys.append(
                KeyListing(
                    row["key_prefix"], row["is_test"], row["key_created_at"], row["revoked_at"]
                )
            )
    return [
        AccountListing(account_id, name, created_at, tuple(keys))
        for account_id, (name, created_at, keys) in grouped.items()
    ]


@dataclass(frozen=True, slots=True)
class NewKeys:
    account_id: str
    name: str
    live_key: str
    test_key: str
    revoked: tuple[str, ...]  # prefixes of the keys these replace (with revoke_old)


async def issue_keys(conn: Connection, account_id: str, *, revoke_old: bool) -> NewKeys | None:
    """A new live and test key for an existing account (None: no such account), stored as
    digests and returned in clear to be shown once. Keys are not kept in clear, so this is
    how a lost key is replaced; `revoke_old` revokes every other key of the account in the
    same transaction."""
    live, test = _new_key("live"), _new_key("test")
    async with conn.transaction():
        row = await store.lock_account(conn, account_id)
        if row is None:
            return None
        for key, is_test in ((live, False), (test, True)):
            await store.insert_api_key(conn, hash_key(key), account_id, is_test, key[:9])
        revoked: list[str] = []
        if revoke_old:
            revoked = await store.revoke_other_api_keys(
                conn, account_id, [hash_key(live), hash_key(test)]
            )
    return NewKeys(account_id, row["name"], live, test, tuple(revoked))
