"""E-mail callbacks: a `callback_url` that is an e-mail address gets the task JSON by SMTP.

Scale: "each completed task will result in an email ... with the body as the task's JSON
payload". Same retry and callback_succeeded rules as HTTP: the SMTP reply code is recorded
as the attempt's status code (2yz is success), a 5yz refusal gives up at once, a 4yz reply,
a timeout or a connection error is retried.
"""

from __future__ import annotations

import json
from email.message import EmailMessage

import aiosmtplib

from taskhook.core.delivery import Claimed, Outcome
from taskhook.core.smtp import SmtpConfig


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
