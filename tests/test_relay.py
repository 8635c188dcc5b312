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
