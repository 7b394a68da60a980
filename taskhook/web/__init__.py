"""The Tasks tab: server-rendered HTML pages where an account signs in with its API key,
filters, inspects, exports and audits its tasks, and sees every callback attempt. Served
by the receiver; no CDN, the page works offline.

routes.py    the page handlers        sessions.py  sign-in sessions, cookies and CSRF
filters.py   the list's URL filters   render.py    Jinja2, markdown, formatting

The pages' queries are in taskhook/core/store/web.py (the `web_` section of queries.sql).
"""

from __future__ import annotations

from aiohttp import web

from taskhook.core.principal import Principal

# The paths the pages own. They are not API: the API-key middleware lets them through, the
# session middleware (sessions.py) guards them, and the OpenAPI document leaves them out.
PAGE_PREFIXES = ("/tasks", "/signin", "/signout", "/static")
_UNDER = tuple(prefix + "/" for prefix in PAGE_PREFIXES)


def is_page(path: str) -> bool:
    """`/` (a redirect to the Tasks tab) and everything under the page prefixes."""
    return path == "/" or path in PAGE_PREFIXES or path.startswith(_UNDER)


# Request-scoped, set by sessions.page_session: who is signed in, and their CSRF token.
SESSION = web.RequestKey("web_session", Principal)
CSRF = web.RequestKey("web_csrf", str)
