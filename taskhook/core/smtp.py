"""Where e-mail callbacks go: the SMTP server of TASKHOOK_SMTP_URL, read once at start."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # smtps:// (implicit TLS); smtp:// upgrades with STARTTLS if offered
    sender: str

    @classmethod
    def from_url(cls, url: str, sender: str) -> SmtpConfig:
        """`smtp://[user:password@]host:port` or `smtps://...`."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must look like smtp://[user:password@]host:port or smtps://...")
        default_port = 465 if parts.scheme == "smtps" else 25
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=parts.scheme == "smtps",
            sender=sender,
        )
