"""Uploaded and imported files: the bytes on local disk, one row each in the database.

A file's bytes are streamed to a temporary name in the files folder while their size is
counted and their SHA-256 taken. Past the size limit the stream stops with a 413 and the
partial file is removed. The row is written only once the bytes sit under the file's id,
so a row never names a missing file; a refused row (its reference_id taken) removes them.

An import fetches its URL under the callback targets' rules: http(s) only, no private or
loopback address unless TASKHOOK_ALLOW_PRIVATE_TARGETS is set, checked on every redirect
and by the resolver that the connection uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from yarl import URL

from taskhook.core import store
from taskhook.core.errors import ApiError, BadRequest
from taskhook.core.principal import Principal
from taskhook.core.replies import File, built
from taskhook.core.serialize import iso
from taskhook.core.settings import Settings
from taskhook.core.store import Connection
from taskhook.core.targets import PRIVATE_HINT, TargetRefused, VettingResolver, check_url, refused

CHUNK_BYTES = 64 * 1024
MAX_REDIRECTS = 5
IMPORT_TIMEOUT_S = 60.0
DEFAULT_MIMETYPE = "application/octet-stream"


class FileTooLarge(ApiError):
    status = 413


@dataclass(frozen=True, slots=True)
class Incoming:
    """What the client says about a file besides its bytes."""

    display_name: str | None
    project_name: str | None
    reference_id: str | None
    metadata: dict[str, Any]
    filename: str | None = None
    mimetype: str | None = None
    source_url: str | None = None


def too_large(settings: Settings) -> FileTooLarge:
    mb = settings.max_file_bytes / 1024 / 1024
    return FileTooLarge(
        f"File is larger than the limit of {mb:g} MB ({settings.max_file_bytes} bytes, "
        "the setting TASKHOOK_MAX_FILE_BYTES)."
    )


def guess_mimetype(declared: str | None, filename: str | None) -> str:
    """The part's or response's Content-Type if it names one, else from the file name."""
    if declared and declared.split(";", 1)[0].strip() not in ("", DEFAULT_MIMETYPE):
        return declared.split(";", 1)[0].strip().lower()
    guessed = mimetypes.guess_type(filename or "")[0]
    return guessed or DEFAULT_MIMETYPE


@dataclass(frozen=True, slots=True)
class Received:
    """Bytes on disk under a temporary name, not yet a file."""

    file_id: str
    partial: Path
    size: int
    sha256: str


async def receive(settings: Settings, chunks: AsyncIterator[bytes]) -> Received:
    """Stream `chunks` to a temporary file within the size limit (else 413, nothing kept)."""
    folder = settings.files_folder
    folder.mkdir(parents=True, exist_ok=True)
    file_id = secrets.token_hex(12)
    partial = folder / f".incoming-{file_id}"
    size, digest = 0, hashlib.sha256()
    try:
        with partial.open("wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > settings.max_file_bytes:
                    raise too_large(settings)
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Received(file_id, partial, size, digest.hexdigest())


def discard(received: Received) -> None:
    received.partial.unlink(missing_ok=True)


async def commit(
    conn: Connection | asyncpg.Pool,
    p: Principal,
    settings: Settings,
    received: Received,
    incoming: Incoming,
) -> asyncpg.Record:
    """Move the bytes under the file's id, then write the row (or remove them again)."""
    final = content_path(settings, received.file_id)
    os.replace(received.partial, final)
    try:
        return await store.insert_file(
            conn,
            p,
            {
                "id": received.file_id,
                "token": secrets.token_hex(16),
                "display_name": incoming.display_name or incoming.filename,
                "project_name": incoming.project_name,
                "reference_id": incoming.reference_id,
                "metadata": incoming.metadata,
                "mimetype": guess_mimetype(incoming.mimetype, incoming.filename),
                "size": received.size,
                "sha256": received.sha256,
                "source_url": incoming.source_url,
            },
        )
    except BaseException:
        final.unlink(missing_ok=True)
        raise


_SERVED_PATH = re.compile(r"/files/([0-9a-f]{24})/([0-9a-f]{32})")


def served_path(url: Any) -> tuple[str, str] | None:
    """(file id, token) if `url` is an attachment_url of this service, whatever its host
    (the request's, or TASKHOOK_PUBLIC_URL); else None."""
    if not isinstance(url, str):
        return None
    try:
        path = URL(url).path
    except (ValueError, TypeError):
        return None
    match = _SERVED_PATH.fullmatch(path)
    return (match[1], match[2]) if match else None


def content_path(settings: Settings, file_id: str) -> Path:
    return settings.files_folder / file_id


def file_json(row: asyncpg.Record, base_url: str) -> File:
    """A file as upload and import return it: what the SDK's File reads (id,
    attachment_url) and what Scale's file object carries besides."""
    return built(
        File,
        {
            "id": row["id"],
            "attachment_url": f"{base_url}/files/{row['id']}/{row['token']}",
            "display_name": row["display_name"],
            "project_name": row["project_name"],
            "reference_id": row["reference_id"],
            "metadata": row["metadata"],
            "mimetype": row["mimetype"],
            "size": row["size"],
            "sha256": row["sha256"],
            "created_at": iso(row["created_at"]),
        },
    )


# --- import -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fetched(url: str, settings: Settings) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET `url` under the targets' rules, following at most MAX_REDIRECTS redirects; a
    refusal or a failed fetch is a 400 that says why."""
    allow = settings.allow_private_targets
    connector = aiohttp.TCPConnector(resolver=VettingResolver(allow), limit=1)
    timeout = aiohttp.ClientTimeout(total=IMPORT_TIMEOUT_S, connect=settings.connect_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        target = _checked(url, allow)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = await session.get(target, allow_redirects=False)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise _fetch_failed(url, exc) from None
            async with response:
                location = response.headers.get("Location")
                if response.status in (301, 302, 303, 307, 308) and location:
                    target = _checked(str(target.join(URL(location))), allow)
                    continue
                if response.status != 200:
                    raise BadRequest(
                        f"Could not import {url!r}: it answered HTTP {response.status}."
                    )
                yield response
                return
        raise BadRequest(f"Could not import {url!r}: more than {MAX_REDIRECTS} redirects.")


def _checked(url: str, allow_private: bool) -> URL:
    try:
        return check_url(url, allow_private)
    except TargetRefused as exc:
        raise BadRequest(_refusal(url, str(exc))) from None


def _refusal(url: str, reason: str) -> str:
    hint = "" if PRIVATE_HINT in reason or "http(s)" in reason else f"; {PRIVATE_HINT}"
    return f"'file_url' must be an http(s) URL to a public address, got {url!r} ({reason}{hint})."


def _fetch_failed(url: str, exc: BaseException) -> BadRequest:
    if refused(exc):
        reason = next(
            (str(e) for e in _chain(exc) if isinstance(e, TargetRefused)), "refused target"
        )
        return BadRequest(_refusal(url, reason))
    kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    return BadRequest(f"Could not import {url!r}: the fetch failed ({kind}).")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: Any = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = getattr(current, "os_error", None) or current.__cause__ or current.__context__
    return seen


async def body_chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        yield chunk
