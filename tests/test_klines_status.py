"""``klines_status``: the newest stored kline and the gaps per symbol; exit 1 on a gap."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from klines.ingest.status import SymbolStatus, symbol_status
from klines.store.writes import save_kline
from tests.helpers import closed_kline

MINUTE = 60_000
BASE = closed_kline().open_time  # 2025-11-25 10:00 UTC


def status(offsets: list[int], until_offset: float, grace_ms: int = 0) -> SymbolStatus:
    opens = [BASE + timedelta(minutes=o) for o in offsets]
    return symbol_status(
        "btcusdt",
        "1m",
        open_times=opens,
        newest=opens[-1] if opens else None,
        until=BASE + timedelta(minutes=until_offset),
        interval_ms=MINUTE,
        grace_ms=grace_ms,
    )


def test_contiguous_klines_up_to_the_last_closed_one_have_no_gap() -> None:
    result = status(list(range(10)), until_offset=10)
    assert result.healthy
    assert result.line() == "BTCUSDT 1m: newest 2025-11-25 10:09 UTC, 10 in range, no gaps"


def test_holes_and_a_stale_end_are_gaps() -> None:
    result = status([0, 1, 4, 5], until_offset=9)
    assert not result.healthy
    assert [g.missing for g in result.gaps] == [2, 3]
    assert result.line().endswith(
        "2 GAPS (5 klines missing): 2025-11-25 10:02..2025-11-25 10:03 (2), 2025-11-25 10:06..2025-11-25 10:08 (3)"
    )


def test_a_kline_within_the_grace_period_is_not_missing_yet() -> None:
    # The kline opening at 10:10 closes at 10:11.
    assert status(list(range(10)), until_offset=11.5, grace_ms=10_000).gaps[0].missing == 1
    assert status(list(range(10)), until_offset=11.1, grace_ms=10_000).healthy


def test_nothing_stored_is_unhealthy() -> None:
    result = status([], until_offset=10)
    assert not result.healthy
    assert "nothing stored" in result.line()


@pytest.mark.django_db(transaction=True)
def test_command_prints_each_symbol_and_succeeds_without_gaps() -> None:
    for offset in range(5):
        save_kline(closed_kline("BTCUSDT", offset))
        save_kline(closed_kline("ETHUSDT", offset))
    out = StringIO()
    call_command(
        "klines_status", "--symbols", "btcusdt,ethusdt", "--until", "2025-11-25T10:05", "--grace", "0", stdout=out
    )
    lines = out.getvalue().splitlines()
    assert lines[0] == "klines 1m from 2025-11-24 10:05 to 2025-11-25 10:05 UTC"
    assert lines[1] == "BTCUSDT 1m: oldest 2025-11-25 10:00 UTC, newest 2025-11-25 10:04 UTC, 5 in range, no gaps"
    assert lines[-1] == "no gaps in 2 symbols"


@pytest.mark.django_db(transaction=True)
def test_command_exits_non_zero_on_a_gap() -> None:
    for offset in (0, 1, 3):
        save_kline(closed_kline("BTCUSDT", offset))
    out = StringIO()
    with pytest.raises(CommandError, match="gaps in 1 of 1 symbols: BTCUSDT") as error:
        call_command(
            "klines_status",
            "--symbols",
            "btcusdt",
            "--since",
            "2025-11-25T09:00",
            "--until",
            "2025-11-25T10:04",
            stdout=out,
        )
    assert error.value.returncode == 1
    assert "1 GAPS (1 klines missing): 2025-11-25 10:02 (1)" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_command_rejects_a_bad_date() -> None:
    with pytest.raises(CommandError, match="not an ISO 8601 date-time"):
        call_command("klines_status", "--until", "yesterday")


@pytest.mark.django_db(transaction=True)
def test_command_shows_the_oldest_stored_kline_even_before_the_window() -> None:
    for offset in (-3 * 1440, *range(5)):
        save_kline(closed_kline("BTCUSDT", offset))
    out = StringIO()
    call_command("klines_status", "--symbols", "btcusdt", "--until", "2025-11-25T10:05", "--grace", "0", stdout=out)
    assert "BTCUSDT 1m: oldest 2025-11-22 10:00 UTC, newest 2025-11-25 10:04 UTC, 5 in range, no gaps" in out.getvalue()
