"""Settings rules: empty means unset, an ingest secret must be a usable one, and an
unknown TASKHOOK_ variable is reported with the setting it probably meant."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from taskhook.core.errors import ConfigError
from taskhook.core.retry import DEFAULT_SCHEDULE
from taskhook.core.settings import (
    NOT_SETTINGS,
    Settings,
    load_settings,
    setting_variables,
    unknown_variable_warning,
    unknown_variables,
)
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


@pytest.mark.parametrize(
    ("name", "closest"),
    [
        ("TASKHOOK_PROT", "TASKHOOK_PORT"),
        ("TASKHOOK_DATABSE_URL", "TASKHOOK_DATABASE_URL"),
        ("TASKHOOK_DISPATCH_PORT", "TASKHOOK_DISPATCHER_PORT"),
        ("TASKHOOK_LOGLEVEL", "TASKHOOK_LOG_LEVEL"),
        ("taskhook_prot", "TASKHOOK_PORT"),  # read case-insensitively, so checked so too
        ("TASKHOOK_ZZZ", None),  # the shared prefix alone makes nothing close
    ],
)
def test_an_unknown_variable_names_the_closest_setting(name: str, closest: str | None) -> None:
    assert unknown_variables({name: "9000", "HOME": "/root"}) == [(name, closest)]
    message = unknown_variable_warning(name, closest)
    assert name in message and (closest is None or closest in message)


def test_settings_and_variables_read_elsewhere_are_not_unknown() -> None:
    """Every setting, in any case, and the variables read outside Settings are quiet."""
    environ = {name: "1" for name in setting_variables()}
    environ |= {name.lower(): "1" for name in setting_variables()}
    environ |= dict.fromkeys(NOT_SETTINGS, "1")
    environ |= {"PATH": "/bin", "TASKHOOKS": "1"}  # not the prefix
    assert unknown_variables(environ) == []


# A TASKHOOK_ variable read through os.environ, set as a key of an environment, or
# exported, in the code, the tests and the docs.
READ = re.compile(
    r"""environ(?:\.get\(|\[)\s*["'](TASKHOOK_[A-Z0-9_]+)"""
    r"""|["'](TASKHOOK_[A-Z0-9_]+)["']\s*:"""
    r"""|export\s+(TASKHOOK_[A-Z0-9_]+)="""
)


def test_every_variable_read_outside_settings_is_known() -> None:
    """A variable taskhook or its tests read that is not a setting must be in NOT_SETTINGS,
    or starting with it exported would warn of a misspelling that is none."""
    root = Path(__file__).resolve().parent.parent
    files = [*root.glob("taskhook/**/*.py"), *root.glob("tests/**/*.py"), *root.glob("bench/*.py")]
    files += [root / "README.md", *root.glob("docs/*.md"), root / "Makefile"]
    read: set[str] = set()
    for path in files:
        read |= {name for match in READ.findall(path.read_text()) for name in match if name}
    assert {"TASKHOOK_FUZZ_EXAMPLES", "TASKHOOK_TEST_HISTORY", "TASKHOOK_SIGNING_SECRET"} <= read
    assert unknown_variables(dict.fromkeys(read, "1")) == []
