"""Settings: one validated, frozen object built once at start from `TASKHOOK_*`.

An empty variable (`TASKHOOK_X=`, as env files and compose's `${X:-}` produce) counts as
unset: the setting keeps its default. For TASKHOOK_DATABASE_URL that default is the
embedded PostgreSQL, which the CLI announces with a `database.embedded` warning.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from taskhook.core.errors import ConfigError
from taskhook.core.retry import DEFAULT_SCHEDULE
from taskhook.core.smtp import SmtpConfig


class Settings(BaseSettings):
    """Every field is an environment variable `TASKHOOK_<NAME>`."""

    model_config = SettingsConfigDict(
        env_prefix="TASKHOOK_", frozen=True, extra="ignore", env_ignore_empty=True
    )

    host: str = Field(
        "127.0.0.1", description="Address the receiver (and the dispatcher's ops server) binds."
    )
    port: int = Field(8080, ge=0, le=65535, description="TCP port of the receiver (0: any free).")
    dispatcher_port: int = Field(
        8081,
        ge=0,
        le=65535,
        description="TCP port of the ops server (/healthz, /readyz, /metrics) of the "
        "standalone `taskhook dispatcher`; 0: no ops server. Not used by `serve`.",
    )
    database_url: str | None = Field(
        None,
        description="PostgreSQL 14+ DSN. Unset: an embedded PostgreSQL in data_dir/pgdata.",
    )
    data_dir: Path = Field(
        Path(".taskhook"), description="Folder for the embedded database and generated secrets."
    )
    files_dir: Path | None = Field(
        None,
        description="Folder of uploaded and imported files (POST /v1/files/...); unset: "
        "data_dir/files. Several receivers on different hosts need one shared folder.",
    )
    max_file_bytes: int = Field(
        80 * 1024 * 1024, ge=1, description="Largest uploaded or imported file (else 413)."
    )
    public_url: str | None = Field(
        None,
        description="Base URL of this receiver as clients reach it (e.g. behind a proxy), "
        "for the attachment_url of files; unset: the URL of the request.",
    )
    db_pool_min: int = Field(2, ge=1, le=100, description="Smallest database pool size.")
    db_pool_max: int = Field(16, ge=1, le=500, description="Largest database pool size.")
    max_body_bytes: int = Field(
        5 * 1024 * 1024, ge=1024, description="Largest request body accepted, in bytes (else 413)."
    )
    # Load shedding (receiver/shedding.py): past these a request is a 503 with Retry-After.
    max_in_flight: int = Field(
        256, ge=1, description="Requests handled at once per process (health endpoints aside)."
    )
    max_in_flight_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Sum of the bodies of the requests in flight."
    )
    ingest_queue_events: int = Field(
        10_000, ge=1, description="Events waiting for the ingest writers (group commit)."
    )
    log_format: str = Field(
        "auto", pattern="^(auto|json|console)$", description="auto: console on a TTY, else JSON."
    )
    log_level: str = Field("info", pattern="^(debug|info|warning|error)$")

    # --- event ingest ---
    ingest_secret: str | None = Field(
        None,
        description="Standard Webhooks secret (whsec_...) that signs POST /v1/events. Unset: "
        "one is generated on first start and kept in data_dir/ingest_secret.",
    )
    secret_key: str | None = Field(
        None,
        description="Base64 of 32 random bytes: encrypts account secrets (callback auth key, "
        "signing secrets) in the database; every process sharing a database needs the same. "
        "Unset: one is generated on first start and kept in data_dir/secret_key.",
    )

    # --- callback delivery ---
    retry_schedule: tuple[float, ...] = Field(
        DEFAULT_SCHEDULE,
        description="JSON list of delays in seconds between attempts; its length is the "
        "number of retries. Default: 20 delays growing to about 24 hours in all.",
    )
    retry_time_scale: float = Field(
        1.0, gt=0, le=1, description="Multiplies every retry delay (tests and demos only)."
    )
    allow_private_targets: bool = Field(
        False, description="Allow callbacks to loopback/private/link-local addresses."
    )
    connect_timeout: float = Field(5.0, gt=0, le=60, description="Callback connect timeout, s.")
    total_timeout: float = Field(15.0, gt=0, le=300, description="Callback total timeout, s.")
    max_response_bytes: int = Field(
        64 * 1024, ge=0, description="At most this much of a callback response is read."
    )
    dispatch_concurrency: int = Field(
        512, ge=1, le=10_000, description="Callbacks in flight at once, per dispatcher."
    )
    per_host_concurrency: int = Field(
        200, ge=1, le=10_000, description="Callbacks in flight to one host, per dispatcher."
    )
    claim_batch: int = Field(200, ge=1, le=1000, description="Deliveries claimed per query.")
    lease_seconds: float = Field(
        60.0, ge=1, description="A claimed delivery is retaken by others after this long."
    )
    poll_interval: float = Field(
        1.0, gt=0, le=60, description="Seconds between polls when no NOTIFY arrives."
    )
    shutdown_grace: float = Field(
        10.0, ge=0, description="Seconds SIGTERM waits for in-flight callbacks."
    )

    smtp_url: str | None = Field(
        None,
        description="smtp://[user:password@]host:port or smtps://...; unset: e-mail "
        "callback targets are refused at create time.",
    )
    smtp_from: str = Field("taskhook@localhost", description="From address of e-mail callbacks.")
    retention_days: int = Field(
        30, ge=1, description="Finished deliveries, attempts and event ids are kept this long."
    )
    prune_interval: float = Field(
        3600.0, gt=0, description="Seconds between retention prunes (run by dispatchers)."
    )

    @property
    def files_folder(self) -> Path:
        return self.files_dir if self.files_dir is not None else self.data_dir / "files"

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL, e.g. https://taskhook.example.com")
        return value.rstrip("/") if value is not None else None

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _schedule_from_json(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value)
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule_sane(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) > 100 or any(d < 0 for d in value):
            raise ValueError("must be a list of at most 100 non-negative numbers")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, value: str | None) -> str | None:
        if value is not None:
            SmtpConfig.from_url(value, "check")  # raises ValueError with the expected form
        return value

    @field_validator("ingest_secret")
    @classmethod
    def _whsec(cls, value: str | None) -> str | None:
        if value is not None:
            check_webhook_secret(value)
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                raw = base64.b64decode(value.strip(), validate=True)
            except ValueError:
                raw = b""
            if len(raw) != 32:  # the message never echoes the value
                raise ValueError(
                    "must be base64 of 32 random bytes; generate one with: python3 -c "
                    '"import base64,secrets;print(base64.b64encode(secrets.token_bytes(32))'
                    '.decode())"'
                )
        return value


MIN_SECRET_BYTES = 24  # the Standard Webhooks lower bound for a signing key
HOW_TO_GENERATE = (
    'generate one with: python3 -c "import base64,secrets;'
    "print('whsec_'+base64.b64encode(secrets.token_bytes(32)).decode())\""
)


def check_webhook_secret(value: str) -> None:
    """A Standard Webhooks secret: 'whsec_' + base64 of at least 24 bytes, which the
    standardwebhooks library accepts. Raises ValueError (without echoing the value)."""
    if not value.startswith("whsec_"):
        raise ValueError(
            f"must be a Standard Webhooks secret starting with 'whsec_'; {HOW_TO_GENERATE}"
        )
    encoded = value.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"the part after 'whsec_' is not base64 (a placeholder?); {HOW_TO_GENERATE}"
        ) from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the key after 'whsec_' is {len(key)} bytes, at least {MIN_SECRET_BYTES} are "
            f"needed; {HOW_TO_GENERATE}"
        )
    from standardwebhooks.webhooks import Webhook

    try:
        Webhook(value)  # the library that verifies POST /v1/events must accept it too
    except Exception as exc:
        raise ValueError(f"not accepted by standardwebhooks ({type(exc).__name__})") from None


# TASKHOOK_* variables that are read, but not as settings, so they are not misspellings:
# the test suite's knobs, and the README quickstart's client side, whose exports may sit
# in the same shell as `make run`.
NOT_SETTINGS = frozenset(
    {
        "TASKHOOK_FUZZ_EXAMPLES",
        "TASKHOOK_TEST_HISTORY",
        "TASKHOOK_DOCS_SCREENSHOT",
        "TASKHOOK_URL",
        "TASKHOOK_LIVE_KEY",
        "TASKHOOK_SIGNING_SECRET",
    }
)


PREFIX = "TASKHOOK_"


def setting_variables() -> list[str]:
    """The environment variable of every setting."""
    return [PREFIX + name.upper() for name in Settings.model_fields]


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Each TASKHOOK_* variable that is no setting (a misspelling is silently ignored
    otherwise), with the closest setting's variable, if one is close. Names compare
    case-insensitively, as the settings read them; the part after the prefix they all
    share is what is compared, so TASKHOOK_ZZZ is close to none."""
    known = setting_variables()
    suffixes = [variable.removeprefix(PREFIX) for variable in known]
    found: list[tuple[str, str | None]] = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in known or upper in NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(upper.removeprefix(PREFIX), suffixes, n=1)
        found.append((name, PREFIX + close[0] if close else None))
    return found


def unknown_variable_warning(name: str, closest: str | None) -> str:
    hint = f"did you mean {closest}?" if closest else "see docs/operations.md for the settings"
    return f"{name} is not a taskhook setting and is ignored ({hint})"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings; a bad value stops the start with a message that names it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"TASKHOOK_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid setting: {problems}") from None
    except SettingsError as exc:  # a complex value (a JSON list) that does not parse
        match = re.search(r'field "(\w+)"', str(exc))
        name = f"TASKHOOK_{match.group(1).upper()}" if match else "a TASKHOOK_ variable"
        raise ConfigError(f"invalid setting: {name}: not valid JSON") from None
