"""The long-running roles' garbage-collector settings (taskhook/core/gctune.py)."""

from __future__ import annotations

import gc

from taskhook.core import gctune


def test_a_started_service_freezes_what_it_holds_and_collects_young_objects_rarely() -> None:
    before = gc.get_threshold()
    try:
        gctune.tune_for_service()
        assert gc.get_freeze_count() > 0  # the objects alive at start are out of every scan
        assert gc.get_threshold() == (gctune.YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
