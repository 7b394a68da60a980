"""Callback targets: which ones we may call, and a resolver that pins what we checked.

A target whose name resolves to any non-global address (loopback, private, link-local,
cloud metadata, CGNAT, multicast, unspecified; IPv4-mapped IPv6 included) is refused unless
private targets are allowed. The check lives in the resolver that aiohttp's connector uses,
so the addresses we checked are exactly the ones we connect to (no DNS-rebinding window).
IP literals never reach a resolver in aiohttp, so they are checked before the request.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp import DefaultResolver
from aiohttp.abc import AbstractResolver, ResolveResult


class TargetRefused(OSError):
    """The target is not an allowed destination (scheme, or a non-global address)."""


def is_forbidden_ip(text: str) -> bool:
    ip = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def check_url(url: str, allow_private: bool) -> None:
    """Refuse a non-http(s) URL, or a literal non-global address, before any connection."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"not an http(s) URL: {url!r}")
    literal = _ip_literal(parts.hostname)
    if literal and not allow_private and is_forbidden_ip(literal):
        raise TargetRefused(f"{parts.hostname} is not a public address")


class VettingResolver(AbstractResolver):
    """Resolves with aiohttp's default resolver, then refuses non-global answers."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            bad = [a["host"] for a in answers if is_forbidden_ip(a["host"])]
            if bad:
                # Refuse if any answer is non-global: an attacker controls the order.
                raise TargetRefused(f"{host} resolves to a non-public address ({bad[0]})")
        return answers

    async def close(self) -> None:
        await self._inner.close()


def refused(exc: BaseException) -> bool:
    """True if an aiohttp error was caused by a refused target."""
    seen: set[int] = set()
    current: Any = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TargetRefused):
            return True
        seen.add(id(current))
        current = getattr(current, "os_error", None) or current.__cause__ or current.__context__
    return False
