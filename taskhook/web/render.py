"""HTML rendering of the Tasks tab: one Jinja2 environment (autoescape on), markdown with
no HTML, and the formatting helpers the templates use."""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import UTC, datetime, tzinfo
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web
from markdown_it import MarkdownIt
from markupsafe import Markup

from taskhook import __version__
from taskhook.web import CSRF, SESSION

STATIC = resources.files("taskhook.web") / "static"
# Pages hold account data: never cached, never framed, scripts and styles only from here.
# Images may come from https (instructions show example images) or data: URLs.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' https: data:; script-src 'self'; "
        "style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

# Seed 000: "HTML tags are unsupported" in instructions. html=False shows any tag as text;
# markdown-it's validateLink drops javascript:, vbscript:, file: and non-image data: links.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_markdown.enable("table")


def _link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    """Links in instructions lead off-site: no referrer, no opener, no endorsement."""
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    return str(renderer.renderToken(tokens, idx, options, env))


_markdown.add_render_rule("link_open", _link_open)


def markdown(text: str | None) -> Markup:
    return Markup(_markdown.render(text or ""))  # noqa: S704 (html disabled: escaped output)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def when(ts: datetime | str | None, zone: tzinfo = UTC, seconds: bool = True) -> str:
    """A time in the chosen zone, e.g. `2024-03-10 14:05:09`."""
    if ts is None:
        return ""
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return ts.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


@functools.cache
def static_url(name: str) -> str:
    """A static file's URL with its content hash, so browsers may cache it for good."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]
    return f"/static/{name}?v={digest}"


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("taskhook.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(markdown=markdown, pretty=pretty, when=when)
_env.globals.update(static_url=static_url, version=__version__)


def page(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """Render a page; the signed-in account and the CSRF token come from the request."""
    html = _env.get_template(template).render(
        who=request.get(SESSION), csrf=request.get(CSRF, ""), path=request.path, **context
    )
    return web.Response(
        text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
    )


def see_other(location: str, headers: dict[str, str] | None = None) -> web.Response:
    """303 to a page (after a POST, or to sign in). Returned, not raised, so the request's
    log line shows 303."""
    return web.Response(status=303, headers={"Location": location, **(headers or {})})
