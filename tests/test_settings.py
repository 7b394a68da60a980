"""Settings rules: empty means unset, and an ingest secret must be a usable one."""

from __future__ import annotations

import base64
import os

import pytest
from standardwebhooks.webhooks import Webhook

from taskhook.core.errors import ConfigError
from taskhook.core.retry import DEFAULT_SCHEDULE
from taskhook.core.settings import Settings, load_settings
from tests.conftest import INGEST_SECRET


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No TASKHOOK_* from the outside (a CI's TASKHOOK_DATABASE_URL, say)."""
    for key in [k for k in os.environ if k.startswith("TASKHOOK_")]:
        monkeypatch.delenv(key)
    return monkeypatch


OPTIONAL = (
    "DATABASE_URL",
    "SMTP_URL",
    "INGEST_SECRET",
    "PORT",
    "DISPATCHER_PORT",
    "LOG_LEVEL",
    "RETRY_SCHEDULE",
    "ALLOW_PRIVATE_TARGETS",
)


def test_an_empty_variable_means_unset(env: pytest.MonkeyPatch) -> None:
    """`TASKHOOK_X=` (env files, compose's ${X:-}) keeps the default instead of failing
    or, for the URLs, meaning an empty URL."""
    defaults = Settings()
    for name in OPTIONAL:
        env.setenv(f"TASKHOOK_{name}", "")
    settings = load_settings()
    assert settings == defaults
    assert settings.database_url is None and settings.smtp_url is None
    assert settings.ingest_secret is None
    assert (settings.port, settings.dispatcher_port) == (8080, 8081)
    assert settings.retry_schedule == DEFAULT_SCHEDULE


def test_dispatcher_port_is_validated(env: pytest.MonkeyPatch) -> None:
    env.setenv("TASKHOOK_DISPATCHER_PORT", "70000")
    with pytest.raises(ConfigError, match="TASKHOOK_DISPATCHER_PORT"):
        load_settings()
    env.setenv("TASKHOOK_DISPATCHER_PORT", "0")
    assert load_settings().dispatcher_port == 0


@pytest.mark.parametrize(
    "value",
    [
        "whsec_REPLACE_ME",  # the deploy examples' placeholder: not base64
        "whsec_CHANGEME",  # base64, but a 6-byte key
        "whsec_" + base64.b64encode(b"x" * 23).decode(),  # one byte short
        "whsec_" + base64.urlsafe_b64encode(b"\xfb" * 32).decode(),  # url-safe alphabet
        "whsec_",
        base64.b64encode(b"k" * 32).decode(),  # no prefix
    ],
)
def test_an_unusable_ingest_secret_is_refused(env: pytest.MonkeyPatch, value: str) -> None:
    """Refused at settings time, naming the variable and not echoing the value."""
    env.setenv("TASKHOOK_INGEST_SECRET", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "TASKHOOK_INGEST_SECRET" in message
    assert value.removeprefix("whsec_") not in message or value == "whsec_"


@pytest.mark.parametrize(
    "value",
    [
        INGEST_SECRET,
        "whsec_" + base64.b64encode(b"k" * 24).decode(),
        "whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("="),  # unpadded
    ],
)
def test_a_good_ingest_secret_is_kept(env: pytest.MonkeyPatch, value: str) -> None:
    env.setenv("TASKHOOK_INGEST_SECRET", value)
    secret = load_settings().ingest_secret
    assert secret == value
    Webhook(secret)  # what create_app does with it
