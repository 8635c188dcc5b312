"""Pure: closed klines kept as encoded blocks, and a ``/fapi/v1/klines`` page cut from them.

A block is the run of klines whose open times fall in one aligned span of
:data:`BLOCK_ROWS` intervals (``open_ms // (BLOCK_ROWS * step)``), written only
when every slot of the span is stored: ``BLOCK_ROWS`` rows one interval apart.
Stored klines are closed and never rewritten, so a complete block is the same
bytes for good; a span with a hole gets no block until a backfill fills it.
Its rows are the page encoder's own bytes for each row, joined by ``,``, with
the end offset of each, so a page is a slice per block and one join: no
kline is decoded or encoded again (measured on SecantusDB: 0.5 ms of its CPU for
the blocks of a 1,500-row page, 88 ms for the 1,500 klines).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

from klines.store.blocks import Block

BLOCK_ROWS = 500  # a 1,500 page spans 3 or 4 blocks; a block of one-minute rows is ~60 KB
_END = struct.Struct("<I")


def span_ms(step_ms: int) -> int:
    """How much open time one block covers."""
    return BLOCK_ROWS * step_ms


def encode_row(row: list[Any]) -> bytes:
    """One row as the page encoder writes it inside the page's list."""
    return json.dumps(row, separators=(",", ":")).encode()


def join_rows(rows: Sequence[bytes]) -> bytes:
    """The page body of these encoded rows: what ``json.dumps(rows, separators=(",", ":"))`` gives."""
    return b"[" + b",".join(rows) + b"]"


def complete_blocks(opens: Sequence[int], rows: Sequence[bytes], step_ms: int) -> list[Block]:
    """The complete blocks among these klines (open times oldest first, with their encoded rows)."""
    span = span_ms(step_ms)
    blocks = []
    i = 0
    while i < len(opens):
        number = opens[i] // span
        j = i
        while j < len(opens) and opens[j] // span == number:
            j += 1
        if j - i == BLOCK_ROWS and all(opens[k + 1] - opens[k] == step_ms for k in range(i, j - 1)):
            blocks.append(block_of(opens[i], rows[i:j]))
        i = j
    return blocks


def block_of(first_open_ms: int, rows: Sequence[bytes]) -> Block:
    """A block of these encoded rows, the first opened at ``first_open_ms``."""
    ends, at = bytearray(), -1
    for row in rows:
        at += 1 + len(row)  # the comma before it, then the row
        ends += _END.pack(at)
    return Block(first_open_ms, b",".join(rows), bytes(ends))


def _row_start(block: Block, index: int) -> int:
    return 0 if index == 0 else _END.unpack_from(block.ends, 4 * (index - 1))[0] + 1


def _row_end(block: Block, index: int) -> int:
    return _END.unpack_from(block.ends, 4 * index)[0]


def page_from_blocks(
    blocks: Sequence[Block], step_ms: int, *, start_ms: int | None, end_ms: int, limit: int
) -> tuple[bytes, list[int]] | None:
    """The page (body, open times) that the klines would give, if ``blocks`` (oldest first) hold all of it.

    ``None`` when they do not: a block missing in the run, or the page reaching
    past their first or last row, where a kline may be stored or missing.
    """
    if not blocks or limit < 1:
        return None
    span = span_ms(step_ms)
    first = blocks[0].first_open_ms
    if any(b.first_open_ms != first + k * span for k, b in enumerate(blocks)):
        return None
    count = len(blocks) * BLOCK_ROWS
    newest = min(count - 1, (end_ms - first) // step_ms)  # the last row opened at or before end_ms
    if start_ms is not None:
        if start_ms <= first - step_ms:  # a slot before the blocks may hold the page's first kline
            return None
        low = max(0, -(-(start_ms - first) // step_ms))
        high = low + limit - 1
        if high > newest:
            if (end_ms - first) // step_ms >= count:  # the page goes on past the blocks
                return None
            high = newest
    else:
        if (end_ms - first) // step_ms >= count:
            return None
        high, low = newest, newest - limit + 1
        if low < 0:
            return None
    if high < low:
        return None
    parts = []
    for k in range(low // BLOCK_ROWS, high // BLOCK_ROWS + 1):
        block = blocks[k]
        a, b = max(low - k * BLOCK_ROWS, 0), min(high - k * BLOCK_ROWS, BLOCK_ROWS - 1)
        parts.append(block.rows[_row_start(block, a) : _row_end(block, b)])
    body = b"[" + b",".join(parts) + b"]"
    return body, list(range(first + low * step_ms, first + high * step_ms + 1, step_ms))
