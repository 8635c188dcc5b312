"""The ingest's update relay: batches per tick, never blocks a reader, bounded while the layer is down."""

from __future__ import annotations

import threading

from klines.ingest.relay import BATCH_EVENTS, UpdateRelay


def test_a_tick_sends_what_gathered_as_one_message_per_batch() -> None:
    sent: list[list] = []
    relay = UpdateRelay(lambda batch, received_ms: sent.append(batch) or True, stop=threading.Event())
    for i in range(BATCH_EVENTS + 3):
        relay.offer("btcusdt@kline_1m", 0, f'{{"n":{i}}}')
    relay.flush()
    assert [len(b) for b in sent] == [BATCH_EVENTS, 3]
    assert [e[2] for b in sent for e in b] == [f'{{"n":{i}}}' for i in range(BATCH_EVENTS + 3)]
    assert relay.relayed == BATCH_EVENTS + 3
    relay.flush()
    assert len(sent) == 2  # nothing new: no message


def test_while_the_layer_is_down_updates_are_dropped_and_counted_never_queued_without_bound() -> None:
    relay = UpdateRelay(lambda batch, received_ms: False, capacity=5, stop=threading.Event())
    for i in range(8):
        relay.offer("btcusdt@kline_1m", 0, str(i))
    assert relay.dropped == 3  # the oldest, beyond capacity
    relay.flush()
    assert relay.dropped == 8 and relay.relayed == 0


def test_each_batch_carries_when_the_oldest_update_waiting_was_received() -> None:
    """The serving processes time the updates' fan-out from it (``received_ms`` in the layer message)."""
    from klines.events import message_started, now_ms, updates_message

    sent: list[int] = []
    relay = UpdateRelay(lambda batch, received_ms: sent.append(received_ms) or True, stop=threading.Event())
    before = now_ms()
    relay.offer("btcusdt@kline_1m", 0, "{}")
    after = now_ms()
    relay.offer("btcusdt@kline_1m", 0, "{}")
    relay.flush()
    relay.offer("ethusdt@kline_1m", 0, "{}")
    relay.flush()
    assert before <= sent[0] <= after <= sent[1]
    assert message_started(updates_message([("btcusdt@kline_1m", 0, "{}")], sent[0])) == sent[0] / 1000


def test_a_close_message_carries_when_it_was_stored_and_an_old_message_is_untimed() -> None:
    from klines.events import kline_from_message, kline_to_message, message_started
    from tests.helpers import closed_kline

    kline = closed_kline("BTCUSDT", 0)
    assert message_started(kline_to_message(kline, 1_700_000_000_123)) == 1_700_000_000.123
    assert kline_from_message(kline_to_message(kline, 1_700_000_000_123)) == kline
    assert message_started(kline_to_message(kline)) is None  # from an ingest that did not stamp it
    assert message_started({**kline_to_message(kline), "stored_ms": True}) is None
