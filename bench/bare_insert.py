"""The write a burst is compared with: the burst's own documents through one bare pymongo ``insert_many``.

After each burst its 1,000 stored documents (exactly as the ORM wrote them)
are read back and inserted again into the same collection, with its indexes,
as one ordered ``insert_many`` from this process: a new ``_id``, ``stored_at``
now, and the symbol's first letter replaced (``S0001USDT`` -> ``X0001USDT``),
so the unique index sees no duplicate and no ingest records those symbols.
What that takes is SecantusDB's share of the burst.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.collection import Collection

SHADOW = "X"


def shadow_documents(documents: Iterable[dict[str, Any]], stored_at: datetime) -> list[dict[str, Any]]:
    """The documents as new ones: fresh ``_id``, ``stored_at``, and a symbol no ingest records."""
    return [
        {**doc, "_id": ObjectId(), "symbol": SHADOW + doc["symbol"][1:], "stored_at": stored_at} for doc in documents
    ]


def timed_insert(collection: Collection, query: dict[str, Any]) -> tuple[float, int]:
    """Insert the documents ``query`` finds again as shadows; (seconds the ``insert_many`` took, documents)."""
    documents = shadow_documents(collection.find(query), datetime.now(UTC))
    began = time.perf_counter()
    collection.insert_many(documents, ordered=True)
    return time.perf_counter() - began, len(documents)
