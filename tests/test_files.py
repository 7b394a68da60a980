"""Files: upload_file and import_file through the official SDK, the attachment_url that
taskhook serves, the size limit, the import's target rules, and account scoping."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
import scaleapi
from aiohttp import web
from scaleapi.exceptions import ScaleDuplicateResource, ScaleException, ScaleInvalidRequest
from scaleapi.tasks import TaskType

from taskhook.core.accounts import NewAccount
from taskhook.core.settings import Settings
from tests.conftest import Api
from tests.waits import wait_until

Client = scaleapi.ScaleClient
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # a PNG signature and some bytes


async def run(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def stored(settings: Settings) -> list[str]:
    folder = settings.files_folder
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def live_sdk(sdk: Callable[[str], Client], account: NewAccount) -> Client:
    return sdk(account.live_key)


@pytest.fixture
async def origin(aiohttp_server: Any) -> str:
    """A file server on 127.0.0.1: /image.png, /big (over the limit), /redirect, /missing."""

    async def image(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def big(_: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: the limit holds while streaming
        response.enable_chunked_encoding()
        await response.prepare(_)
        for _i in range(40):
            await response.write(b"x" * 65536)
        await response.write_eof()
        return response

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("/image.png")

    app = web.Application()
    app.router.add_get("/image.png", image)
    app.router.add_get("/big", big)
    app.router.add_get("/redirect", redirect)
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}"


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes, dict[str, str]]:
    async with http.get(url) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def test_upload_serves_the_bytes_and_feeds_a_task(
    live_sdk: Client,
    live: Api,
    http: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    settings: Settings,
) -> None:
    """upload_file returns a File whose attachment_url serves the same bytes, with no key,
    and a task can take it as its attachment."""
    await live.project()
    got = await run(
        live_sdk.upload_file,
        file=("kitten.png", io.BytesIO(PNG)),
        project_name="proj",
        metadata='{"id": "kitten0"}',
        reference_id="kitten-0",
    )
    body = got.as_dict()
    assert got.id and body["size"] == len(PNG) and body["mimetype"] == "image/png"
    assert body["display_name"] == "kitten.png" and body["project_name"] == "proj"
    assert body["metadata"] == {"id": "kitten0"} and body["reference_id"] == "kitten-0"
    assert body["sha256"] == hashlib.sha256(PNG).hexdigest()
    status, data, headers = await fetch(http, got.attachment_url)
    assert status == 200 and data == PNG
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Security-Policy"] == "sandbox"
    assert headers["X-Content-Type-Options"] == "nosniff"
    wrong = got.attachment_url[:-4] + "0000"
    assert (await fetch(http, wrong))[0] == 404
    task = await run(
        live_sdk.create_task,
        TaskType.ImageAnnotation,
        project="proj",
        attachment=got.attachment_url,
        geometries={"box": {"objects_to_annotate": ["cat"]}},
    )
    assert task.params["attachment"] == got.attachment_url
    status, meta = await live.call("GET", f"/v1/files/{got.id}")
    assert status == 200 and meta == body
    with pytest.raises(ScaleDuplicateResource):
        await run(live_sdk.upload_file, file=("k.png", io.BytesIO(PNG)), reference_id="kitten-0")
    assert await pool.fetchval("SELECT count(*) FROM files") == 1
    assert stored(settings) == [got.id]  # the refused duplicate left no bytes behind


@pytest.mark.settings(max_file_bytes=1000)
async def test_over_the_limit_is_413_and_keeps_nothing(
    live_sdk: Client, pool: asyncpg.Pool, origin: str, settings: Settings
) -> None:
    """A file over TASKHOOK_MAX_FILE_BYTES is a 413 naming the setting; nothing is kept,
    neither a row nor bytes, for an upload or a streamed import."""
    with pytest.raises(ScaleException) as err:
        await run(live_sdk.upload_file, file=("big.bin", io.BytesIO(b"x" * 5000)))
    assert err.value.code == 413 and "TASKHOOK_MAX_FILE_BYTES" in err.value.message
    with pytest.raises(ScaleException) as err:
        await run(live_sdk.import_file, file_url=origin + "/big")
    assert err.value.code == 413
    assert await pool.fetchval("SELECT count(*) FROM files") == 0
    assert stored(settings) == []


async def test_import_fetches_follows_redirects_and_names_errors(
    live_sdk: Client, http: aiohttp.ClientSession, origin: str
) -> None:
    got = await run(live_sdk.import_file, file_url=origin + "/redirect")
    assert got.as_dict()["display_name"] == "image.png"
    assert got.as_dict()["mimetype"] == "image/png"
    assert (await fetch(http, got.attachment_url))[1] == PNG
    with pytest.raises(ScaleInvalidRequest, match="HTTP 404"):
        await run(live_sdk.import_file, file_url=origin + "/missing")
    with pytest.raises(ScaleInvalidRequest, match="http"):
        await run(live_sdk.import_file, file_url="file:///etc/passwd")
    with pytest.raises(ScaleInvalidRequest, match="Project 'nope' not found"):
        await run(live_sdk.import_file, file_url=origin + "/image.png", project_name="nope")


@pytest.mark.settings(allow_private_targets=False)
async def test_import_obeys_the_target_rules(live_sdk: Client, origin: str) -> None:
    """Without TASKHOOK_ALLOW_PRIVATE_TARGETS a loopback URL is refused, and the error
    names the setting."""
    for url in (origin + "/image.png", "http://localhost:9/x", "http://[::1]:9/x"):
        with pytest.raises(ScaleInvalidRequest) as err:
            await run(live_sdk.import_file, file_url=url)
        assert "TASKHOOK_ALLOW_PRIVATE_TARGETS" in err.value.message, err.value.message


async def test_files_belong_to_their_account_and_world(
    live_sdk: Client,
    sdk: Callable[[str], Client],
    account: NewAccount,
    make_account: Callable[[str], Any],
    base_url: str,
    http: aiohttp.ClientSession,
) -> None:
    got = await run(live_sdk.upload_file, file=("a.txt", io.BytesIO(b"hello")))
    assert got.as_dict()["mimetype"] == "text/plain"
    other: NewAccount = await make_account("other")
    for key in (account.test_key, other.live_key):
        async with http.get(
            f"{base_url}/v1/files/{got.id}", headers={"Authorization": f"Bearer {key}"}
        ) as resp:
            assert resp.status == 404
    async with http.get(f"{base_url}/v1/files/{got.id}") as resp:
        assert resp.status == 401


async def test_bad_uploads_are_400(
    live: Api, base_url: str, http: aiohttp.ClientSession, settings: Settings
) -> None:
    auth = {"Authorization": f"Bearer {live.key}"}
    cases: list[tuple[Any, str]] = [
        ({"x": "y"}, "multipart"),  # JSON, not multipart
    ]
    for payload, words in cases:
        async with http.post(f"{base_url}/v1/files/upload", json=payload, headers=auth) as r:
            assert r.status == 400 and words in (await r.json())["error"]
    form = aiohttp.FormData()
    form.add_field("display_name", "no file")
    async with http.post(f"{base_url}/v1/files/upload", data=form, headers=auth) as r:
        assert r.status == 400 and "'file'" in (await r.json())["error"]
    form = aiohttp.FormData()
    form.add_field("file", b"abc", filename="a.bin")
    form.add_field("metadata", "[1, 2]")
    async with http.post(f"{base_url}/v1/files/upload", data=form, headers=auth) as r:
        assert r.status == 400 and "metadata" in (await r.json())["error"]
    assert stored(settings) == []


@pytest.mark.settings(max_in_flight_body_bytes=1024)
async def test_an_upload_is_not_shed_by_its_bytes(
    live: Api, base_url: str, receiver_server: Any, http: aiohttp.ClientSession
) -> None:
    """Uploads stream to disk, so TASKHOOK_MAX_IN_FLIGHT_BODY_BYTES does not count them: a
    5 KB upload beside another request in flight is taken, where a 5 KB JSON body is shed."""
    auth = {"Authorization": f"Bearer {live.key}"}
    release = asyncio.Event()

    async def slow_body() -> Any:
        yield b'{"name": "slow", "type": "categorization"}'[:10]
        await release.wait()
        yield b'{"name": "slow", "type": "categorization"}'[10:]

    async def slow_request() -> int:
        async with http.post(
            f"{base_url}/v1/projects", data=slow_body(), headers={**auth, "Content-Length": "42"}
        ) as resp:
            return resp.status

    server = receiver_server.runner.server  # aiohttp's web.Server: requests it has begun
    before = server.requests_count
    in_flight = asyncio.create_task(slow_request())
    await wait_until(lambda: server.requests_count > before, what="the slow request begun")
    try:
        form = aiohttp.FormData()
        form.add_field("file", b"x" * 5000, filename="five.bin")
        async with http.post(f"{base_url}/v1/files/upload", data=form, headers=auth) as resp:
            assert resp.status == 200, await resp.text()
        big_json = {"name": "p" * 5000, "type": "categorization"}
        async with http.post(f"{base_url}/v1/projects", json=big_json, headers=auth) as resp:
            assert resp.status == 503
    finally:
        release.set()
    assert await in_flight == 200
