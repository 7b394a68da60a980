"""The secret that signs POST /v1/events: from the settings, or generated once and kept."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from taskhook.core.settings import Settings

FILE_NAME = "ingest_secret"


def load_or_create(settings: Settings) -> tuple[str, bool]:
    """(secret, created_now). A generated secret lives in data_dir, readable by us only."""
    if settings.ingest_secret:
        return settings.ingest_secret, False
    path = Path(settings.data_dir).expanduser() / FILE_NAME
    if path.exists():
        return path.read_text().strip(), False
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret, True
