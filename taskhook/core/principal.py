"""Who calls: the account and world of the API key a request presented."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the account and the world (test or live) of the key used."""

    account_id: str
    account_name: str
    is_test: bool
    default_callback_url: str | None
