"""The README's first session, run as written: its Python block, against `taskhook serve`
started as `make run` starts it (private targets allowed, everything else at defaults),
with the three values `make run` prints."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import INGEST_SECRET
from tests.procs import create_account, make_role

pytestmark = pytest.mark.subprocess  # the README's commands as real processes

README = Path(__file__).resolve().parent.parent / "README.md"


def quickstart_code() -> str:
    """The first ```python block under '## A first session'."""
    section = README.read_text().split("## A first session", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README has no Python block under 'A first session'"
    return match.group(1)


async def test_the_readme_first_session_runs_as_written(dsn: str, tmp_path: Path) -> None:
    serve = make_role("serve", dsn, tmp_path, TASKHOOK_POLL_INTERVAL="1")
    await serve.start()
    try:
        keys = await create_account(serve.env, "first")
        script = tmp_path / "quickstart.py"
        script.write_text(quickstart_code())
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK_")},
            "TASKHOOK_URL": serve.url,
            "TASKHOOK_LIVE_KEY": keys["live_key"],
            "TASKHOOK_SIGNING_SECRET": keys["signing_secret"],
            "TASKHOOK_INGEST_SECRET": INGEST_SECRET,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        await serve.stop()
    text = out.decode()
    assert proc.returncode == 0, err.decode()[-3000:] + serve.log_tail()
    assert re.search(r"^created [0-9a-f]{24} pending$", text, re.M), text
    assert '"status":"applied"' in text.replace(" ", ""), text
    assert "callback: completed {'category': 'cat'}" in text, text
    assert "callback_succeeded: True" in text, text
