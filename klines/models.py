"""The stored kline (candle)."""

from __future__ import annotations

from django.db import models
from django_mongodb_backend.managers import MongoManager

# The collection is fixed, as its migration (0001_initial) is: migrate builds the collection and its
# indexes from the migration's model, not this one, so a name read from the environment would have
# made migrate's result depend on the environment at migrate time, and a service pointed at another
# name write to a collection MongoDB creates on first insert, without the unique index.
KLINES_COLLECTION = "klines"

PRICE = {"max_digits": 30, "decimal_places": 12}


class Kline(models.Model):
    """One closed kline of one symbol and interval, exactly as Binance reported it."""

    symbol = models.CharField(max_length=30, help_text="Upper-case Binance symbol, e.g. BTCUSDT")
    interval = models.CharField(max_length=4, help_text="Binance interval, e.g. 1m")
    open_time = models.DateTimeField()
    close_time = models.DateTimeField()
    open = models.DecimalField(**PRICE)
    high = models.DecimalField(**PRICE)
    low = models.DecimalField(**PRICE)
    close = models.DecimalField(**PRICE)
    volume = models.DecimalField("base volume", **PRICE)
    quote_volume = models.DecimalField(**PRICE)
    trades = models.BigIntegerField("number of trades")
    taker_buy_base_volume = models.DecimalField(**PRICE)
    taker_buy_quote_volume = models.DecimalField(**PRICE)
    stored_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = MongoManager()  # adds raw_aggregate(), for reads SecantusDB can serve from an index

    class Meta:
        db_table = KLINES_COLLECTION
        ordering = ["-open_time"]
        constraints = [
            models.UniqueConstraint(fields=["symbol", "interval", "open_time"], name="unique_kline"),
        ]
        indexes = [
            # "Last N klines of a symbol". The unique index above cannot serve it:
            # django-mongodb-backend makes it partial, and a query must repeat the
            # partial filter for MongoDB to use a partial index.
            models.Index(fields=["symbol", "interval", "-open_time"], name="kline_latest"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.interval} {self.open_time:%Y-%m-%d %H:%M} close {self.close}"


class ExchangeSource(models.Model):
    """The exchange that feeds this database's record (one row), and its last ``exchangeInfo``.

    The ingest claims the database for its source (``klines.binance.source``: what
    decides the data, not the address) before any request to the exchange, and
    refuses to record another source's klines into it (the simulator's next to
    Binance's, say). ``record`` is the same for every row and unique: of two ingests
    claiming an empty database at once, one inserts and the other reads it back.
    The mirror serves ``GET /fapi/v1/exchangeInfo`` from the copy kept here.
    """

    record = models.PositiveSmallIntegerField(default=1, unique=True, editable=False)
    source = models.CharField(
        max_length=200, blank=True, help_text="Empty: claimed by a version that kept only the URL"
    )
    rest_url = models.CharField("REST base URL", max_length=200, blank=True, help_text="The last ingest's")
    claimed_at = models.DateTimeField(auto_now_add=True)
    exchange_info = models.TextField(blank=True, help_text="Body of GET /fapi/v1/exchangeInfo, as fetched")
    exchange_info_fetched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "exchange_source"

    def __str__(self) -> str:
        return self.source or self.rest_url


class ExchangeGap(models.Model):
    """Klines the exchange itself does not have (no trading): REST returned nothing for the range.

    The ingest's hole repair records each such range once and never fetches it
    again; ``klines_status`` reports it as an exchange gap, not as a hole.
    """

    symbol = models.CharField(max_length=30)
    interval = models.CharField(max_length=4)
    first_open = models.DateTimeField(help_text="Open time of the first kline the exchange does not have")
    last_open = models.DateTimeField(help_text="Open time of the last kline the exchange does not have")
    found_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "exchange_gaps"
        constraints = [
            models.UniqueConstraint(fields=["symbol", "interval", "first_open"], name="unique_exchange_gap"),
        ]
        # The unique index is partial (see Kline); a plain index serves the reads.
        indexes = [models.Index(fields=["symbol", "interval", "first_open"], name="exchange_gap_range")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.interval} {self.first_open:%Y-%m-%d %H:%M}..{self.last_open:%Y-%m-%d %H:%M}"


class MarkPriceKline(models.Model):
    """One closed mark-price kline (``GET /fapi/v1/markPriceKlines``): prices only, no volumes."""

    symbol = models.CharField(max_length=30)
    interval = models.CharField(max_length=4)
    open_time = models.DateTimeField()
    close_time = models.DateTimeField()
    open = models.DecimalField(**PRICE)
    high = models.DecimalField(**PRICE)
    low = models.DecimalField(**PRICE)
    close = models.DecimalField(**PRICE)
    samples = models.BigIntegerField(help_text="Binance's number of price samples")
    stored_at = models.DateTimeField(auto_now_add=True)

    objects = MongoManager()

    class Meta:
        db_table = "mark_price_klines"
        ordering = ["-open_time"]
        constraints = [
            models.UniqueConstraint(fields=["symbol", "interval", "open_time"], name="unique_mark_price_kline"),
        ]
        indexes = [models.Index(fields=["symbol", "interval", "open_time"], name="mark_price_kline_range")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.interval} mark {self.open_time:%Y-%m-%d %H:%M} close {self.close}"


class FundingRate(models.Model):
    """One settled funding of a perpetual (``GET /fapi/v1/fundingRate``)."""

    symbol = models.CharField(max_length=30)
    funding_time = models.DateTimeField()
    funding_rate = models.DecimalField(**PRICE)
    mark_price = models.DecimalField(**PRICE)
    from_stream = models.BooleanField(
        default=False, help_text="recorded from the mark-price stream, not yet confirmed by REST"
    )
    stored_at = models.DateTimeField(auto_now_add=True)

    objects = MongoManager()

    class Meta:
        db_table = "funding_rates"
        ordering = ["-funding_time"]
        constraints = [models.UniqueConstraint(fields=["symbol", "funding_time"], name="unique_funding_rate")]
        indexes = [models.Index(fields=["symbol", "funding_time"], name="funding_rate_range")]

    def __str__(self) -> str:
        return f"{self.symbol} funding {self.funding_time:%Y-%m-%d %H:%M} {self.funding_rate}"


class KlineBlock(models.Model):
    """A run of consecutive stored klines of one symbol and interval, kept encoded as ``/fapi/v1/klines`` rows.

    Closed klines never change, so a page of them can be cut from these bytes
    instead of decoding and encoding each kline again (``klines/api/blocks.py``).
    A block is written only for a complete run (every slot of its aligned span
    stored), so it never disagrees with the klines it was encoded from.
    """

    symbol = models.CharField(max_length=30)
    interval = models.CharField(max_length=4)
    block_start = models.DateTimeField(help_text="Open time of the block's first kline")
    rows = models.BinaryField(help_text="The rows' JSON, joined by commas")
    ends = models.BinaryField(help_text="Where each row ends in rows: unsigned 32-bit little-endian offsets")

    class Meta:
        db_table = "kline_blocks"
        constraints = [
            models.UniqueConstraint(fields=["symbol", "interval", "block_start"], name="unique_kline_block"),
        ]
        # The unique index is partial (see Kline); a plain index serves the reads.
        indexes = [models.Index(fields=["symbol", "interval", "block_start"], name="kline_block_range")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.interval} block from {self.block_start:%Y-%m-%d %H:%M}"
