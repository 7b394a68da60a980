"""Handlers of the file endpoints: upload (multipart), import (a URL), the metadata, and
the bytes behind each attachment_url (taskhook/core/files.py has the rules)."""

from __future__ import annotations

import dataclasses
import hmac
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from taskhook.core import files, store
from taskhook.core.appkeys import POOL, SETTINGS, principal
from taskhook.core.errors import BadRequest, NotFound
from taskhook.core.logs import get_logger
from taskhook.core.models import FileFields, FileImport
from taskhook.core.replies import File
from taskhook.core.responses import ok
from taskhook.core.validation import check_metadata, check_text, decode_json, parse_model
from taskhook.receiver.routes import Api, Body, model_body

log = get_logger("taskhook.files")
api = Api("files", params={"file_id": "The file's id (`id`)."}, errors=(404,))
routes = api.routes
_LIMIT = " Larger than TASKHOOK_MAX_FILE_BYTES (80 MB by default): 413."
_UPLOAD_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The file's bytes."},
        "display_name": {"type": "string", "description": "Default: the part's file name."},
        "project_name": {"type": "string", "description": "An existing project."},
        "reference_id": {
            "type": "string",
            "description": "Unique per account and world: a repeat is a 409.",
        },
        "metadata": {"type": "string", "description": "A JSON object, as text."},
    },
}

MAX_FIELD_BYTES = 64 * 1024  # a form field other than the file
_FORM_FIELDS = frozenset(FileFields.model_fields)
# Types a browser may show inline; everything else downloads. The sandbox keeps an
# uploaded document from running scripts in this origin (the Tasks tab's).
_INLINE_PREFIXES = ("image/", "video/", "audio/", "application/pdf", "text/plain")


def base_url(request: web.Request) -> str:
    configured = request.app[SETTINGS].public_url
    return configured or f"{request.scheme}://{request.host}"


@api.post(
    "/v1/files/upload",
    "Upload a file (multipart/form-data)",
    File,
    errors=(409,),
    body=Body(
        _UPLOAD_FORM,
        "The file as the part `file`, with optional fields." + _LIMIT,
        None,  # streamed to disk part by part
        media="multipart/form-data",
    ),
)
async def upload_file(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if (request.content_length or 0) > settings.max_file_bytes + MAX_FIELD_BYTES:
        raise files.too_large(settings)
    if not request.content_type.startswith("multipart/form-data"):
        raise BadRequest("Expected a multipart/form-data body with a 'file' part.")
    reader = await request.multipart()
    fields: dict[str, Any] = {}
    received: files.Received | None = None
    part_info: tuple[str | None, str | None] = (None, None)
    try:
        while (part := await _next_part(reader)) is not None:
            if part.name == "file" and received is None:
                part_info = (part.filename, part.headers.get("Content-Type"))
                received = await files.receive(settings, _part_chunks(part))
            elif part.name in _FORM_FIELDS:
                fields[part.name] = await _field_text(part)
            else:
                await part.release()
        if received is None:
            raise BadRequest("Missing required parameter 'file' (a multipart file part).")
        incoming = await _incoming(request, fields, *part_info)
        row = await files.commit(
            request.app[POOL], principal(request), settings, received, incoming
        )
    except BaseException:
        if received is not None:
            files.discard(received)
        raise
    log.info("file.uploaded", file_id=row["id"], size=row["size"], mimetype=row["mimetype"])
    return ok(files.file_json(row, base_url(request)))


@api.post(
    "/v1/files/import",
    "Import a file from a URL",
    File,
    errors=(409,),
    body=model_body(
        FileImport,
        "`file_url` is fetched under the callback targets' rules (no private address unless "
        "TASKHOOK_ALLOW_PRIVATE_TARGETS)." + _LIMIT,
    ),
)
async def import_file(request: web.Request, body: FileImport) -> web.Response:
    settings = request.app[SETTINGS]
    check_text(body.file_url, "'file_url'")
    incoming = await _incoming(request, body.model_dump(exclude={"file_url"}), None, None)
    async with files.fetched(body.file_url, settings) as response:
        if (response.content_length or 0) > settings.max_file_bytes:
            raise files.too_large(settings)
        received = await files.receive(settings, files.body_chunks(response))
        mimetype = response.headers.get("Content-Type")
        filename = response.url.path.rsplit("/", 1)[-1] or None
    try:
        incoming = dataclasses.replace(
            incoming, filename=filename, mimetype=mimetype, source_url=body.file_url
        )
        row = await files.commit(
            request.app[POOL], principal(request), settings, received, incoming
        )
    except BaseException:
        files.discard(received)
        raise
    log.info("file.imported", file_id=row["id"], size=row["size"], mimetype=row["mimetype"])
    return ok(files.file_json(row, base_url(request)))


@api.get("/v1/files/{file_id}", "Get a file's metadata", File)
async def get_file(request: web.Request) -> web.Response:
    file_id = request.match_info["file_id"]
    row = await store.get_file(request.app[POOL], principal(request), file_id)
    if row is None:
        raise NotFound(f"File '{file_id}' not found.")
    return ok(files.file_json(row, base_url(request)))


@api.get(
    "/files/{file_id}/{token}",
    "A file's bytes, behind its attachment_url",
    {"type": "string", "format": "binary"},
    media="application/octet-stream",
    public=True,
    params={"token": "The token of the file's attachment_url."},
)
async def get_file_content(request: web.Request) -> web.StreamResponse:
    """The bytes behind an attachment_url: the token in the URL is the credential."""
    row = await store.get_file_content(request.app[POOL], request.match_info["file_id"])
    if row is None or not hmac.compare_digest(row["token"], request.match_info["token"]):
        raise NotFound("No such file.")
    inline = row["mimetype"].startswith(_INLINE_PREFIXES)
    disposition = "inline" if inline else "attachment"
    return web.FileResponse(
        files.content_path(request.app[SETTINGS], row["id"]),
        headers={
            "Content-Type": row["mimetype"],
            "Content-Disposition": disposition,
            "Content-Security-Policy": "sandbox",
            "X-Content-Type-Options": "nosniff",
            "ETag": f'"{row["sha256"]}"',
            "Cache-Control": "private, max-age=3600",
        },
    )


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    """The next part; a malformed body (headers, boundary, encoding) is a 400."""
    try:
        part = await reader.next()
    except (HttpProcessingError, ValueError, AssertionError) as exc:
        raise BadRequest(f"The multipart body is malformed ({type(exc).__name__}).") from None
    if part is not None and not isinstance(part, BodyPartReader):
        raise BadRequest("Nested multipart bodies are not supported.")
    return part


async def _part_chunks(part: BodyPartReader) -> Any:
    while True:
        try:
            chunk = await part.read_chunk(files.CHUNK_BYTES)
        except (HttpProcessingError, ValueError, AssertionError) as exc:
            raise BadRequest(f"The multipart body is malformed ({type(exc).__name__}).") from None
        if not chunk:
            return
        yield chunk


async def _field_text(part: BodyPartReader) -> Any:
    raw = bytearray()
    async for chunk in _part_chunks(part):
        raw += chunk
        if len(raw) > MAX_FIELD_BYTES:
            raise BadRequest(f"Form field '{part.name}' is over {MAX_FIELD_BYTES} bytes.")
    if part.name == "metadata":
        return decode_json(bytes(raw))
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise BadRequest(f"Form field '{part.name}' is not UTF-8 text.") from None


async def _incoming(
    request: web.Request, fields: dict[str, Any], filename: str | None, mimetype: str | None
) -> files.Incoming:
    """Check the fields; a named project must exist in the caller's world."""
    body = parse_model(FileFields, fields)
    for name in ("display_name", "project_name", "reference_id"):
        value = getattr(body, name)
        if value is not None:
            check_text(value, f"'{name}'")
    metadata = check_metadata(body.metadata)
    if body.project_name is not None:
        project = await store.get_project(request.app[POOL], principal(request), body.project_name)
        if project is None:
            raise BadRequest(f"Project '{body.project_name}' not found.")
    return files.Incoming(
        body.display_name, body.project_name, body.reference_id, metadata, filename, mimetype
    )
