"""The import's fast path from the mall's wall-clock text to UTC agrees with the general parser,
including across daylight-saving transitions (where an hour's offset is not cached)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.services.import_files import CellInvalid, LocalTimes, parse_local_datetime


def _every_quarter_hour(start: str, hours: int) -> list[str]:
    first = datetime.fromisoformat(start)
    return [
        (first + timedelta(minutes=15 * step, seconds=step % 60)).isoformat(" ") for step in range(hours * 4)
    ]


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("Asia/Shanghai", "2026-03-01 00:00:00"),
        # Spring forward (02:00–03:00 does not exist) and fall back (01:00–02:00 happens twice).
        ("America/New_York", "2026-03-08 00:00:00"),
        ("America/New_York", "2026-11-01 00:00:00"),
        # Lord Howe Island springs forward by half an hour at 02:00: 02:00–02:30 does not exist, so
        # that hour has two offsets and must not be cached.
        ("Australia/Lord_Howe", "2026-10-04 00:00:00"),
        ("Australia/Lord_Howe", "2026-04-05 00:00:00"),
    ],
)
def test_fast_path_matches_the_general_parser(zone: str, start: str) -> None:
    tz = ZoneInfo(zone)
    local_times = LocalTimes(tz)
    for text in _every_quarter_hour(start, 6):
        moment, sql_text = local_times.utc(text)
        expected = parse_local_datetime(text, tz)
        assert moment == expected and moment.tzinfo == UTC, text
        assert sql_text == expected.replace(tzinfo=None).isoformat(" "), text


def test_shanghai_is_eight_hours_ahead_and_other_layouts_still_parse() -> None:
    local_times = LocalTimes(ZoneInfo("Asia/Shanghai"))
    expected = (datetime(2026, 5, 19, 23, 30, tzinfo=UTC), "2026-05-19 23:30:00")
    assert local_times.utc("2026-05-20 07:30:00") == expected
    assert local_times.utc("2026/05/20 07:30")[1] == "2026-05-19 23:30:00"
    assert local_times.utc(datetime(2026, 5, 20, 7, 30))[1] == "2026-05-19 23:30:00"


@pytest.mark.parametrize(
    "text", ["2026-02-30 10:00:00", "2026-13-01 10:00:00", "2026-05-20 25:00:00", "昨天下午"]
)
def test_impossible_times_are_rejected_as_cells(text: str) -> None:
    with pytest.raises(CellInvalid):
        LocalTimes(ZoneInfo("Asia/Shanghai")).utc(text)
