"""taskhook/core/serialize.py: Scale's timestamp form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from taskhook.core.serialize import iso


def test_timestamps_are_utc_with_milliseconds_and_z() -> None:
    assert iso(datetime(2016, 6, 23, 9, 9, 34, 752999, tzinfo=UTC)) == "2016-06-23T09:09:34.752Z"
    assert iso(datetime(2016, 6, 23, 9, 9, 34, tzinfo=UTC)) == "2016-06-23T09:09:34.000Z"


def test_other_offsets_are_converted_to_utc() -> None:
    three_east = timezone(timedelta(hours=3))
    assert (
        iso(datetime(2016, 6, 23, 1, 0, 0, 5000, tzinfo=three_east)) == "2016-06-22T22:00:00.005Z"
    )
    assert iso(None) is None
