"""taskhook/core/ids.py: buffered random identifiers."""

from __future__ import annotations

import re

from taskhook.core import ids


def test_ids_have_the_asked_length_and_do_not_repeat() -> None:
    # Enough draws to cross several buffer refills (4096 bytes each).
    drawn = [ids.random_hex(12) for _ in range(2000)]
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in drawn)
    assert len(set(drawn)) == len(drawn)


def test_a_draw_larger_than_the_buffer_is_whole() -> None:
    assert len(ids.random_hex(5000)) == 10000
    assert len(ids.random_hex(8)) == 16
