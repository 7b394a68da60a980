"""Random identifiers (webhook-id of a callback, a request's id), drawn from a buffer.

An os.urandom call per id would be a getrandom system call, two or more per ingested
event; one call fills a buffer that serves a few hundred ids. The bytes are os.urandom's
all the same; secrets (API keys, signing secrets) are still drawn directly with
`secrets`.
"""

from __future__ import annotations

import os

_BUFFER_BYTES = 4096
_buffer = b""
_used = 0


def random_hex(nbytes: int) -> str:
    """2 * nbytes hex characters of os.urandom output, as secrets.token_hex gives."""
    global _buffer, _used
    if _used + nbytes > len(_buffer):
        _buffer, _used = os.urandom(max(_BUFFER_BYTES, nbytes)), 0
    start = _used
    _used += nbytes
    return _buffer[start:_used].hex()
