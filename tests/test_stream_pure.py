"""Pure pieces of the ingest: connection split, backoff, pong budget, gap watch, stats line, log cap."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from klines.backoff import Backoff
from klines.binance.parse import combined_stream_url
from klines.ingest.frames import MALFORMED_LOG_PER_MINUTE, KlineIngestor
from klines.ingest.gaps import Gap, SequenceWatch, find_gaps, last_expected_open
from klines.ingest.stats import LAGS_LISTED, Counters, format_stats, lag_seconds
from klines.ingest.stream import TokenBucket, split_streams
from klines.simexchange.exchange_info import made_up_symbols

MINUTE = 60_000


def test_streams_split_into_groups_of_at_most_the_limit_in_order() -> None:
    streams = [(f"S{i}USDT", "1m") for i in range(7)]
    assert split_streams(streams, 3) == [tuple(streams[0:3]), tuple(streams[3:6]), tuple(streams[6:])]
    assert split_streams(streams, 1024) == [tuple(streams)]


def test_many_streams_split_into_urls_binance_accepts() -> None:
    # 500 symbols at 3 intervals: 1,024 a connection would make a 20,000-character URL, and
    # Binance (like the simulator's server) answers 414 over about 8,000: the ingest never connected.
    streams = [(symbol, interval) for symbol in made_up_symbols(500) for interval in ("1m", "5m", "1h")]
    groups = split_streams(streams, 1024)
    assert [s for group in groups for s in group] == streams
    urls = [combined_stream_url("wss://fstream.binance.com/market", group) for group in groups]
    assert max(len(url) for url in urls) <= 8000
    assert len(groups) == 4  # not more than the length needs


def test_a_stream_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        split_streams([("A", "1m")], 0)


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 4.0), (10_000, 4.0)]:
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jitter: reconnecting clients do not stampede together


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=5, burst=5, clock=lambda: now[0])
    assert [bucket.allow() for _ in range(6)] == [True] * 5 + [False]
    now[0] += 0.2
    assert bucket.allow()
    assert not bucket.allow()
    now[0] += 10
    assert sum(bucket.allow() for _ in range(10)) == 5


def test_sequence_watch_reports_the_first_missing_open_time() -> None:
    watch = SequenceWatch(MINUTE)
    assert watch.observe("BTCUSDT", 10 * MINUTE) is None  # nothing known before: nothing to judge
    assert watch.observe("BTCUSDT", 11 * MINUTE) is None
    assert watch.observe("BTCUSDT", 14 * MINUTE) == 12 * MINUTE
    assert watch.observe("BTCUSDT", 14 * MINUTE) is None  # a repeated close
    assert watch.observe("BTCUSDT", 12 * MINUTE) is None  # a late one
    assert watch.observe("ETHUSDT", 3 * MINUTE) is None


def test_sequence_watch_judges_against_klines_known_from_rest() -> None:
    watch = SequenceWatch(MINUTE)
    watch.note("BTCUSDT", 20 * MINUTE)
    watch.note("BTCUSDT", 18 * MINUTE)  # older news changes nothing
    assert watch.observe("BTCUSDT", 21 * MINUTE) is None
    assert watch.observe("BTCUSDT", 25 * MINUTE) == 22 * MINUTE


def test_find_gaps_between_and_after_stored_klines() -> None:
    opens = [m * MINUTE for m in (1, 2, 3, 6, 7, 9)]
    assert find_gaps(opens, interval_ms=MINUTE) == [
        Gap(first_ms=4 * MINUTE, last_ms=5 * MINUTE, missing=2),
        Gap(first_ms=8 * MINUTE, last_ms=8 * MINUTE, missing=1),
    ]
    assert find_gaps(opens, interval_ms=MINUTE, expected_last_ms=12 * MINUTE)[-1] == Gap(
        first_ms=10 * MINUTE, last_ms=12 * MINUTE, missing=3
    )
    assert find_gaps([], interval_ms=MINUTE, expected_last_ms=5 * MINUTE) == []


def test_last_expected_open_follows_the_stored_grid_and_the_grace() -> None:
    week = 7 * 24 * 60 * MINUTE
    monday = 4 * 24 * 60 * MINUTE  # weekly klines open on Mondays, not on the epoch's Thursday
    assert last_expected_open(monday, until_ms=monday + 3 * week, interval_ms=week) == monday + 2 * week
    assert last_expected_open(0, until_ms=10 * MINUTE, interval_ms=MINUTE) == 9 * MINUTE
    assert last_expected_open(0, until_ms=10 * MINUTE + 5_000, interval_ms=MINUTE, grace_ms=10_000) == 8 * MINUTE


def test_lag_is_from_the_close_of_the_newest_stored_kline() -> None:
    newest = {("BTCUSDT", "1m"): datetime(2025, 11, 25, 10, 0, tzinfo=UTC)}
    now_ms = int(datetime(2025, 11, 25, 10, 1, 2, tzinfo=UTC).timestamp() * 1000)
    assert lag_seconds(newest, [("btcusdt", "1m"), ("ethusdt", "1m")], now_ms=now_ms) == {
        "BTCUSDT": 2.0,
        "ETHUSDT": None,
    }


def test_with_several_intervals_each_lag_is_labelled_with_its_interval() -> None:
    newest = {("BTCUSDT", "1m"): datetime(2025, 11, 25, 10, 0), ("BTCUSDT", "5m"): datetime(2025, 11, 25, 9, 55)}
    newest = {key: moment.replace(tzinfo=UTC) for key, moment in newest.items()}
    now_ms = int(datetime(2025, 11, 25, 10, 1, 2, tzinfo=UTC).timestamp() * 1000)
    assert lag_seconds(newest, [("BTCUSDT", "1m"), ("BTCUSDT", "5m")], now_ms=now_ms) == {
        "BTCUSDT 1m": 2.0,
        "BTCUSDT 5m": 62.0,  # closed at 10:00
    }


def test_stats_line_names_every_counter_and_each_lag() -> None:
    counters = Counters(messages=120, stored=5, duplicates=1, malformed=2, unknown=1, reconnects=3, backfilled=11)
    line = format_stats(counters, {"BTCUSDT": 1.25, "ETHUSDT": None})
    assert line == (
        "stats: 120 messages, 5 klines stored, 11 fetched from REST, 1 duplicates skipped, 2 malformed, "
        "1 unknown streams, 3 reconnects, 0 dropped, 0 queued, 0 rejected, 0 pongs skipped, "
        "0 rate limits waited out; lag BTCUSDT 1.2s ETHUSDT -"
    )


def test_stats_line_reports_malformed_by_kind_rejected_pongs_skipped_and_rate_limits() -> None:
    counters = Counters(malformed=4, malformed_kinds={"k.c": 1, "json": 3}, rejected=2, pongs_skipped=7, rate_limited=1)
    line = format_stats(counters, {})
    assert "4 malformed (json 3, k.c 1), 0 unknown streams" in line
    assert "2 rejected, 7 pongs skipped, 1 rate limits waited out" in line


def test_stats_line_lists_only_the_worst_lags_of_many_symbols() -> None:
    lags = {f"S{i:03d}": float(i) for i in range(300)}
    line = format_stats(Counters(), lags)
    assert f"lag (worst {LAGS_LISTED} of 300) S299 299.0s S298 298.0s" in line
    assert line.count("s S") == LAGS_LISTED - 1


def test_a_flood_of_bad_frames_is_counted_but_its_logging_capped(caplog: pytest.LogCaptureFixture) -> None:
    ingestor = KlineIngestor(streams=[("btcusdt", "1m")], sink=lambda kline: None)
    with caplog.at_level(logging.WARNING, logger="klines"):
        for n in range(100):
            ingestor.handle_message(f"not json {n}")
    assert ingestor.stats.malformed == 100
    assert len(caplog.records) == MALFORMED_LOG_PER_MINUTE + 1
    assert "not json 0" in caplog.records[0].getMessage()
