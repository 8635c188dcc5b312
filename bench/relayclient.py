"""Stream clients for the relay benchmark: each names a few streams and checks their order.

For each combined frame it reads the stream, ``E`` (the exchange's send time, ms) and
``k.L`` (the round) without decoding the JSON: a round skipped is a lost update, one
not advancing a reordered one; latency is the receipt's wall clock minus ``E``.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench import load
from bench.load import IdleClients
from bench.wsclient import FeedConnection


def frame_fields(payload: bytes) -> tuple[bytes, int, int]:
    """(stream, E, k.L) of a combined kline frame ``{"stream":"..","data":{.."E":..,"k":{.."L":..}}}``."""
    start = payload.index(b'"stream":"') + 10
    stream = payload[start : payload.index(b'"', start)]
    e_at = payload.index(b'"E":', start) + 4
    event_ms = int(payload[e_at : payload.index(b",", e_at)])
    l_at = payload.index(b'"L":', e_at) + 4
    end = l_at
    while payload[end] in b"0123456789":
        end += 1
    return stream, event_ms, int(payload[l_at:end])


@dataclass
class Tally:
    """What every client saw; latencies only while ``measuring``."""

    measuring: bool = False
    latencies: array = field(default_factory=lambda: array("d"))  # seconds
    received: int = 0  # frames while measuring
    lost: dict[bytes, int] = field(default_factory=dict)  # stream -> updates skipped, summed over its clients
    reordered: dict[bytes, int] = field(default_factory=dict)

    def start(self) -> None:
        self.measuring = True
        self.latencies = array("d")
        self.received = 0
        self.lost.clear()
        self.reordered.clear()


class StreamClient(FeedConnection):
    def __init__(self, port: int, streams: Sequence[str], tally: Tally) -> None:
        super().__init__(port, initial=0, path="/market/stream?streams=" + "/".join(streams))
        self.streams = list(streams)
        self.tally = tally
        self.last: dict[bytes, int] = {}  # stream -> newest round received

    def on_text(self, payload: bytes) -> None:
        now = time.time()
        stream, event_ms, round_ = frame_fields(payload)
        tally = self.tally
        last = self.last.get(stream)
        if last is None or round_ > last:
            self.last[stream] = round_
        if tally.measuring:
            tally.received += 1
            tally.latencies.append(now - event_ms / 1000)
            if last is not None and round_ != last + 1:
                if round_ > last:
                    tally.lost[stream] = tally.lost.get(stream, 0) + round_ - last - 1
                else:
                    tally.reordered[stream] = tally.reordered.get(stream, 0) + 1


def subscriptions(streams: Sequence[str], clients: int, per_client: int) -> list[list[str]]:
    """``per_client`` consecutive streams per client, wrapping, so every stream gets about the same subscribers."""
    return [[streams[(n * per_client + j) % len(streams)] for j in range(per_client)] for n in range(clients)]


async def open_clients(ports: Sequence[int], plan: Sequence[Sequence[str]], tally: Tally) -> IdleClients:
    """One client per entry of ``plan``, alternating ``ports``."""
    clients = [(ports[n % len(ports)], streams) for n, streams in enumerate(plan)]
    return await load.open_many(clients, lambda item: StreamClient(item[0], item[1], tally), concurrency=100)
