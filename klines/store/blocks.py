"""Encoded blocks of closed klines (:class:`~klines.models.KlineBlock`): read a range of them, store one once.

What a block holds and when one may be written is :mod:`klines.api.blocks`' concern;
this module only moves the bytes, through indexed pipelines like :mod:`klines.store.reads`.
"""

from __future__ import annotations

from typing import NamedTuple

from django.db import IntegrityError, connections, router

from klines.binance.parse import datetime_to_ms, ms_to_datetime
from klines.models import KlineBlock
from klines.store import pipelines
from klines.store.records import utc


class Block(NamedTuple):
    first_open_ms: int  # open time of its first row
    rows: bytes  # the rows' JSON, joined by ","
    ends: bytes  # where each row ends in ``rows``: unsigned 32-bit little-endian offsets


def _aggregate(pipeline: pipelines.Pipeline) -> list[dict]:
    connection = connections[router.db_for_read(KlineBlock)]
    collection = connection.get_collection(KlineBlock._meta.db_table)
    return collection.aggregate(pipeline, session=connection.session).to_list()


def blocks_between(symbol: str, interval: str, after_ms: int, until_ms: int) -> list[Block]:
    """The blocks of one symbol whose first row opened in ``(after_ms, until_ms]``, oldest first."""
    pipeline = pipelines.blocks_between(symbol, interval, ms_to_datetime(after_ms), ms_to_datetime(until_ms))
    return [
        Block(datetime_to_ms(utc(d["block_start"])), bytes(d["rows"]), bytes(d["ends"])) for d in _aggregate(pipeline)
    ]


def block_starts(symbol: str, interval: str) -> list[int]:
    """Open time (ms) of the first row of every stored block of one symbol and interval, oldest first."""
    return [datetime_to_ms(utc(d["block_start"])) for d in _aggregate(pipelines.block_starts(symbol, interval))]


def save_block(symbol: str, interval: str, block: Block) -> bool:
    """Store ``block`` once; ``False`` if a block with its start was already stored (the same bytes)."""
    try:
        KlineBlock.objects.create(
            symbol=symbol, interval=interval, block_start=ms_to_datetime(block.first_open_ms), rows=block.rows,
            ends=block.ends,
        )  # fmt: skip
    except IntegrityError:
        return False
    return True
