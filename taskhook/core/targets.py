"""Callback targets: which ones we may call, and a resolver that pins what we checked.

A target whose name resolves to any non-global address (loopback, private, link-local,
cloud metadata, CGNAT, multicast, unspecified; IPv4 embedded in IPv6 as mapped, compatible,
6to4 or NAT64 included) is refused unless private targets are allowed. The check lives in
the resolver that aiohttp's connector uses, so the addresses we checked are exactly the ones
we connect to (no DNS-rebinding window).

Hosts that look like IP addresses never reach a resolver in aiohttp, so they are checked
before the request, on the host exactly as aiohttp will see it (yarl's parse: IDNA folds
full-width digits into `127.0.0.1`), and in every legacy spelling the C library still accepts
(`2130706433`, `0177.0.0.1`, `0x7f.0.0.1`, `127.1`, `127.0.0.1.`): those are literals too.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from aiohttp import DefaultResolver
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


PRIVATE_HINT = (
    "set TASKHOOK_ALLOW_PRIVATE_TARGETS=1 to allow private and loopback addresses, "
    "e.g. for local development"
)


class TargetRefused(OSError):
    """The target is not an allowed destination (scheme, or a non-global address)."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries: mapped, compatible, 6to4 or NAT64."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or int(ip) >> 32 == 0:  # NAT64, or deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_forbidden_ip(address: str | IPAddress) -> bool:
    if isinstance(address, str):
        address = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and is_forbidden_ip(inner):
            return True
    return not address.is_global or address.is_multicast


def _ipv4_part(part: str) -> int | None:
    """One part of an IPv4 literal in the C library's (and WHATWG's) rules: 0x hex, leading
    0 octal, else decimal; None if it is not a number at all."""
    if not part.isascii():
        return None
    lowered = part.lower()
    try:
        if lowered.startswith("0x"):
            return int(lowered[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part, 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """`host` read as an IPv4 literal in any spelling the C library resolves without DNS
    (decimal, octal, hex, 1 to 4 parts, a trailing dot); None if it is a name."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_part(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        raise TargetRefused(f"{host} is not a valid IPv4 address")
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def ip_literal(host: str) -> IPAddress | None:
    """The address a URL host denotes if it is a literal in any spelling, else None (a name).
    A host that looks like an address but is not a valid one is refused."""
    host = unquote(host.strip("[]"))
    if ":" in host:  # aiohttp takes any host with a colon for an IPv6 address
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise TargetRefused(f"{host} is not a valid IPv6 address") from None
    return _legacy_ipv4(host)


def check_url(url: str, allow_private: bool) -> URL:
    """Refuse a non-http(s) URL, or a literal non-global address, before any connection.
    The host is read with yarl, as aiohttp reads it when it connects; the parsed URL is
    returned so the request uses exactly what was checked (and is not parsed twice)."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise TargetRefused(f"not an http(s) URL: {url!r}") from None
    host = parsed.raw_host
    if parsed.scheme not in ("http", "https") or not host:
        raise TargetRefused(f"not an http(s) URL: {url!r}")
    refusal = _host_refusal(host, allow_private)
    if refusal is not None:
        raise TargetRefused(refusal)
    return parsed


@lru_cache(maxsize=4096)
def _host_refusal(host: str, allow_private: bool) -> str | None:
    """Why a URL with this host is refused, or None. Cached per host: the rule reads
    nothing else, and URLs that carry a task id are each new."""
    try:
        literal = ip_literal(host)
    except TargetRefused as exc:
        return str(exc)
    if allow_private:
        return None
    if literal is not None and is_forbidden_ip(literal):
        return f"{host} is not a public address; {PRIVATE_HINT}"
    if host.rstrip(".").lower().split(".")[-1] == "localhost":  # RFC 6761: always loopback
        return f"{host} is a loopback name; {PRIVATE_HINT}"
    return None


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
