"""E-mail callbacks: a `callback_url` that is an e-mail address gets the task JSON by SMTP.

Scale: "each completed task will result in an email ... with the body as the task's JSON
payload". Same retry and callback_succeeded rules as HTTP: the SMTP reply code is recorded
as the attempt's status code (2yz is success), a 5yz refusal gives up at once, a 4yz reply,
a timeout or a connection error is retried.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

from taskhook.delivery import Claimed, Outcome


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


def message_for(d: Claimed, sender: str) -> EmailMessage:
    payload = json.loads(d.payload)
    task = payload.get("task", payload)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = d.target
    what = f"Task {d.task_id}" if d.task_id is not None else f"Batch {payload.get('name', '')}"
    msg["Subject"] = f"{what} {payload.get('status', '')}".strip()
    msg["X-Taskhook-Webhook-Id"] = d.webhook_id  # stable across retries, like webhook-id
    msg.set_content(json.dumps(task, indent=2, ensure_ascii=False))
    return msg


async def mail(d: Claimed, cfg: SmtpConfig, seconds: float) -> tuple[Outcome, str]:
    try:
        _, reply = await aiosmtplib.send(
            message_for(d, cfg.sender),
            hostname=cfg.host,
            port=cfg.port,
            username=cfg.username,
            password=cfg.password,
            use_tls=cfg.use_tls,
            timeout=seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        code = exc.recipients[0].code if exc.recipients else 550
        return _refused(code, str(exc)), str(exc)[:1000]
    except aiosmtplib.SMTPResponseException as exc:
        return _refused(exc.code, exc.message), exc.message[:1000]
    except aiosmtplib.SMTPTimeoutError:
        return Outcome(error="timeout"), ""
    except (aiosmtplib.SMTPException, OSError):
        return Outcome(error="connect_error"), ""
    return Outcome(status_code=250), reply[:1000]


def _refused(code: int, _message: str) -> Outcome:
    # 5yz is permanent (no such mailbox, relaying denied): retrying cannot help.
    return Outcome(status_code=code, error="smtp_rejected" if code >= 500 else None)
