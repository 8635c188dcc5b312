"""The churn soak's judge of what stayers received: a lost, repeated or reordered close is counted, not missed."""

from __future__ import annotations

import json

from bench.stayers import StreamLog, judge, judge_feed, judge_stream_closes, judge_updates

CLOSES = {"BTCUSDT": [100.0 + i for i in range(14)]}  # 14 stored closes: windows end at positions 9..13


def frame(end: int) -> bytes:
    """The "/" frame whose last 10 closes end at stored position ``end``."""
    return json.dumps({"coin": "BTCUSDT", "values": CLOSES["BTCUSDT"][end - 9 : end + 1]}).encode()


def test_every_close_once_in_order_is_clean() -> None:
    verdict = judge_feed([frame(10), frame(11), frame(12), frame(13)], CLOSES)
    assert (verdict.expected, verdict.received, verdict.faults) == (3, 3, 0)


def test_a_feed_stayer_missing_the_last_close_is_counted_lost_a_skipped_one_coalesced() -> None:
    """Issue 23: a frame not yet sent is replaced by the coin's newer one, so a stayer may skip a close that
    the next frame shows (coalesced); a close no frame showed, the newest never arriving, is lost."""
    verdict = judge_feed([frame(10), frame(12)], CLOSES)
    assert (verdict.lost, verdict.coalesced, verdict.faults) == (1, 1, 1)  # 11 in frame 12's values; 13 never came


def test_a_feed_stayer_repeated_or_reordered_close_is_counted() -> None:
    verdict = judge_feed([frame(9), frame(11), frame(10), frame(10), frame(12), frame(13)], CLOSES)
    assert (verdict.lost, verdict.reordered, verdict.repeated) == (0, 1, 1)


def test_a_frame_matching_no_stored_window_is_unexpected() -> None:
    odd = json.dumps({"coin": "BTCUSDT", "values": [1.0] * 10}).encode()
    assert judge_feed([frame(12), odd, frame(13)], CLOSES).unexpected == 1


def test_stream_closes_against_the_exchange_log() -> None:
    log = StreamLog()
    for open_ms in (60_000, 180_000, 120_000, 180_000):
        log.add(closed=True, open_ms=open_ms, last_trade=0)
    verdict = judge_stream_closes(log, [60_000, 120_000, 180_000, 240_000])
    assert (verdict.lost, verdict.reordered, verdict.repeated) == (1, 1, 1)


def test_updates_lost_within_a_kline_are_lost_but_skips_at_a_close_are_not() -> None:
    log = StreamLog()
    for open_ms, round_ in ((0, 101), (0, 102), (0, 104), (60_000, 107), (60_000, 108)):
        log.add(closed=False, open_ms=open_ms, last_trade=round_)
    verdict = judge_updates(log)
    assert (verdict.lost, verdict.skipped_at_close, verdict.reordered) == (1, 2, 0)


def test_an_update_going_back_or_of_a_closed_kline_is_reordered() -> None:
    log = StreamLog()
    log.add(closed=False, open_ms=60_000, last_trade=105)
    log.add(closed=False, open_ms=60_000, last_trade=104)
    log.add(closed=True, open_ms=60_000, last_trade=0)
    log.add(closed=False, open_ms=60_000, last_trade=106)  # the kline closed already
    assert judge_updates(log).reordered == 2


def test_judge_counts_positions_outside_the_expected_range() -> None:
    verdict = judge([None, 3, 4, 9], 3, 4)
    assert (verdict.unexpected, verdict.lost) == (2, 0)
