"""The parser benchmark's frames are ones the service accepts, so the suite's parser rate runs."""

from __future__ import annotations

from bench.scenarios.parse import sample_frames
from klines.binance.parse import parse_stream_message


def test_every_sample_frame_parses_and_one_in_ten_is_a_close() -> None:
    updates = [parse_stream_message(frame) for frame in sample_frames(400)]
    assert sum(update.closed for update in updates) == 40
