"""Read and validate the service's configuration from environment variables.

Pure: :func:`load_config` takes a mapping (``os.environ`` plus a ``.env`` file)
and returns a :class:`Config` or raises :class:`ConfigError` whose message names
the variable to fix.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from pymongo.errors import ConfigurationError, InvalidURI
from pymongo.uri_parser import parse_uri

from binancews.redact import redact_uris
from klines.binance.intervals import INTERVAL_SECONDS
from klines.binance.names import parse_intervals, parse_symbols
from klines.binance.source import SourceError, record_source
from klines.ingest.settings import IngestSettings
from klines.serving.metrics_access import DEFAULT_METRICS_ALLOWED_IPS, parse_networks
from klines.serving.settings import ServingSettings

EMBEDDED_MONGO_PORT = 27117
EMBEDDED_MONGO_URI = f"mongodb://127.0.0.1:{EMBEDDED_MONGO_PORT}/?directConnection=true"
DEFAULT_SYMBOLS = ("btcusdt", "bnbusdt", "ethusdt", "solusdt", "xrpusdt")
DEFAULT_HISTORY = 1500  # one REST page (weight 10) per (symbol, interval)
MAX_HISTORY = 100_000  # 67 pages; more is backfill_klines' job (from the archive, without weight)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message says what to set."""


@dataclass(frozen=True, kw_only=True)
class Config:
    mongo_uri: str = field(repr=False)  # may hold a password
    mongo_database: str
    binance_ws_url: str
    binance_rest_url: str
    source: str  # the exchange whose klines the record holds (klines.binance.source), from the URLs and KLINE_SOURCE
    binance_archive_url: str  # Binance's public kline archive (backfill_klines)
    symbols: tuple[str, ...]  # configured; empty with KLINE_SYMBOLS=all
    all_symbols: bool  # KLINE_SYMBOLS=all: every trading perpetual the exchange lists
    feed_symbols: tuple[str, ...]  # what `/` sends on connect, in order
    symbols_refresh_seconds: float
    intervals: tuple[str, ...]  # the first is the default of `/`
    timezone: str
    secret_key: str = field(repr=False)
    debug: bool
    allowed_hosts: tuple[str, ...]
    https: bool  # served over https (directly or behind a TLS-terminating proxy)
    csrf_trusted_origins: tuple[str, ...]
    proxy_ssl_header: str  # a header the proxy sets to "https", e.g. X-Forwarded-Proto; "" = none
    ws_allowed_origins: tuple[str, ...]
    redis_url: str = field(repr=False)  # may hold a password
    poll_seconds: float
    ws_max_pending_bytes: int
    ws_max_connections: int
    health_grace_seconds: float
    metrics_allowed_ips: tuple[str, ...]
    blocks: bool
    embedded_mongo: bool
    streams_per_connection: int
    silence_seconds: float
    reconnect_max_seconds: float
    stats_seconds: float
    queue_size: int
    rest_weight_per_minute: int
    repair_seconds: float
    history: int  # KLINE_HISTORY: closed klines a first start stores per (symbol, interval); 0 = the newest 11 only
    mark_prices: bool  # KLINE_MARK_PRICES: record mark-price klines and funding rates beside the klines
    metrics_port: int  # the ingest's metrics endpoint; 0 = off
    metrics_address: str

    def __repr__(self) -> str:
        """Without the secrets: Django's error reports show ``settings.BINANCEWS`` by this repr."""
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        # BINANCE_WS_URL / BINANCE_REST_URL may carry user:password@ (a proxy, a mirror).
        return redact_uris(f"{type(self).__name__}({shown})")

    @property
    def interval(self) -> str:
        """The first recorded interval: what `/` shows by default."""
        return self.intervals[0]

    @property
    def interval_seconds(self) -> int:
        return INTERVAL_SECONDS[self.interval]

    @property
    def ingest(self) -> IngestSettings:
        """The ingest's slice."""
        return IngestSettings(
            ws_url=self.binance_ws_url,
            rest_url=self.binance_rest_url,
            source=self.source,
            symbols=self.symbols,
            all_symbols=self.all_symbols,
            symbols_refresh_seconds=self.symbols_refresh_seconds,
            intervals=self.intervals,
            streams_per_connection=self.streams_per_connection,
            silence_seconds=self.silence_seconds,
            reconnect_max_seconds=self.reconnect_max_seconds,
            stats_seconds=self.stats_seconds,
            queue_size=self.queue_size,
            rest_weight_per_minute=self.rest_weight_per_minute,
            repair_seconds=self.repair_seconds,
            history=self.history,
            mark_prices=self.mark_prices,
            metrics_port=self.metrics_port,
            metrics_address=self.metrics_address,
        )

    @property
    def serving(self) -> ServingSettings:
        """The serving processes' slice."""
        return ServingSettings(
            symbols=self.feed_symbols,
            recorded_symbols=None if self.all_symbols else self.symbols,
            intervals=self.intervals,
            timezone=self.timezone,
            poll_seconds=self.poll_seconds,
            ws_max_pending_bytes=self.ws_max_pending_bytes,
            ws_max_connections=self.ws_max_connections,
            ws_allowed_origins=self.ws_allowed_origins,
            health_grace_seconds=self.health_grace_seconds,
            metrics_allowed_ips=self.metrics_allowed_ips,
            blocks=self.blocks,
            redis_url=self.redis_url,
        )


def _checked(parse: Callable[..., Any], raw: str, variable: str) -> Any:
    """``parse(raw, variable=...)`` with its ``ValueError`` as a :class:`ConfigError`."""
    try:
        return parse(raw, variable=variable)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _symbols(env: Mapping[str, str]) -> dict[str, Any]:
    """``KLINE_SYMBOLS`` (a list, or ``all``) and ``FEED_SYMBOLS`` (default: that list, or the seed's five)."""
    raw = env.get("KLINE_SYMBOLS", ",".join(DEFAULT_SYMBOLS))
    all_symbols = raw.strip().lower() == "all"
    symbols = () if all_symbols else _checked(parse_symbols, raw, "KLINE_SYMBOLS")
    feed_raw = env.get("FEED_SYMBOLS", "").strip()
    feed = _checked(parse_symbols, feed_raw, "FEED_SYMBOLS") if feed_raw else symbols or DEFAULT_SYMBOLS
    if symbols and not set(feed) <= set(symbols):
        unknown = ", ".join(s for s in feed if s not in symbols)
        raise ConfigError(f"FEED_SYMBOLS: {unknown} not in KLINE_SYMBOLS; `/` can only send recorded symbols")
    return {"symbols": symbols, "all_symbols": all_symbols, "feed_symbols": feed}


def _source(env: Mapping[str, str], ws_url: str, rest_url: str) -> str:
    try:
        return record_source(ws_url=ws_url, rest_url=rest_url, name=env.get("KLINE_SOURCE", ""))
    except SourceError as exc:
        raise ConfigError(str(exc)) from None


def _intervals(env: Mapping[str, str]) -> tuple[str, ...]:
    """``KLINE_INTERVALS``, or ``KLINE_INTERVAL`` (one interval, the older name), default ``1m``."""
    if env.get("KLINE_INTERVALS", "").strip():
        return _checked(parse_intervals, env["KLINE_INTERVALS"], "KLINE_INTERVALS")
    return _checked(parse_intervals, env.get("KLINE_INTERVAL", "1m"), "KLINE_INTERVAL")


def _parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}: {raw!r} is not a boolean; use true or false")


def _parse_timezone(raw: str) -> str:
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"KLINE_TIMEZONE: unknown time zone {raw!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None
    return raw


def _parse_mongo_uri(raw: str) -> str:
    uri = raw.strip()
    if uri.startswith("mongodb+srv://"):
        # Resolving an SRV record needs DNS; only check the shape here.
        if not urlsplit(uri).hostname:
            raise ConfigError("MONGO_URI: the mongodb+srv:// URI has no host")
        return uri
    try:
        parse_uri(uri)
    except (InvalidURI, ConfigurationError, ValueError) as exc:
        raise ConfigError(f"MONGO_URI: {exc} (expected e.g. mongodb://host:27017/)") from None
    return uri


def _parse_url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    url = env.get(name, default).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{name}: {url!r} is not a {' or '.join(schemes)} URL")
    return url


def _parse_positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{name}: {raw!r} is not a positive number")
    return value


def _parse_count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name}: {raw!r} is not a positive whole number")
    return value


def _parse_history(env: Mapping[str, str]) -> int:
    """``KLINE_HISTORY``: a whole number from 0 (off) to :data:`MAX_HISTORY`."""
    raw = env.get("KLINE_HISTORY", "").strip()
    if not raw:
        return DEFAULT_HISTORY
    if not raw.isdigit() or int(raw) > MAX_HISTORY:
        raise ConfigError(
            f"KLINE_HISTORY: {raw!r} is not a number of klines from 0 (off) to {MAX_HISTORY} "
            "(older history: manage.py backfill_klines)"
        )
    return int(raw)


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_name(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default).strip()
    if not value or any(ch in value for ch in ' /\\."$\x00'):
        raise ConfigError(f"{name}: {value!r} is not a valid MongoDB name")
    return value


def _refuse_collection(env: Mapping[str, str]) -> None:
    """``MONGO_COLLECTION`` is gone: the klines collection is fixed by its migration (``klines``)."""
    value = env.get("MONGO_COLLECTION", "").strip()
    if value not in ("", "klines"):
        raise ConfigError(
            f"MONGO_COLLECTION: {value!r} is no longer supported; the klines collection is 'klines' (fixed by its "
            "migration): rename the collection to 'klines', or use MONGO_DATABASE to keep deployments apart"
        )


def _parse_origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    origins = _parse_list(env.get(name, ""))
    for origin in origins:
        parts = urlsplit(origin)
        # An origin has no user:password@ (a credential there would be shown with the settings).
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or "@" in origin:
            shown = redact_uris(origin)
            raise ConfigError(f"{name}: {shown!r} is not an origin such as 'https://binancews.example.com'")
    return tuple(origin.rstrip("/") for origin in origins)


def _parse_header(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if value and not re.fullmatch(r"[A-Za-z0-9-]+", value):
        raise ConfigError(f"{name}: {value!r} is not a header name such as 'X-Forwarded-Proto'")
    return value


def _parse_networks(env: Mapping[str, str]) -> tuple[str, ...]:
    """``METRICS_ALLOWED_IPS``: addresses or CIDR ranges allowed to read ``/metrics`` (default loopback, private)."""
    raw = env.get("METRICS_ALLOWED_IPS", "").strip()
    items = _parse_list(raw) if raw else DEFAULT_METRICS_ALLOWED_IPS
    try:
        parse_networks(items)
    except ValueError as exc:
        raise ConfigError(f"METRICS_ALLOWED_IPS: {exc}") from None
    return items


def _parse_port(env: Mapping[str, str], name: str) -> int:
    """A TCP port, or 0 (unset or empty) for off."""
    raw = env.get(name, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ConfigError(f"{name}: {raw!r} is not a port number (0-65535; 0 or empty = off)")
    return int(raw)


def _parse_address(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, default).strip()
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not an IP address such as 127.0.0.1 or 0.0.0.0") from None
    return raw


def load_config(env: Mapping[str, str]) -> Config:
    """Build the configuration from ``env``; raise :class:`ConfigError` on bad values."""
    debug = _parse_bool(env, "DJANGO_DEBUG", default=False)
    secret_key = env.get("DJANGO_SECRET_KEY", "").strip()
    allowed_hosts = _parse_list(env.get("DJANGO_ALLOWED_HOSTS", ""))
    if not debug:
        if not secret_key:
            raise ConfigError(
                "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off (for local development: DJANGO_DEBUG=true)"
            )
        if not allowed_hosts:
            raise ConfigError("DJANGO_ALLOWED_HOSTS must be set when DJANGO_DEBUG is off (e.g. 'example.com')")
    secret_key = secret_key or "insecure-development-key-set-DJANGO_SECRET_KEY-in-production"
    mongo_uri_raw = env.get("MONGO_URI", "").strip()
    _refuse_collection(env)
    ws_url = _parse_url(env, "BINANCE_WS_URL", "wss://fstream.binance.com/market", ("ws", "wss"))
    rest_url = _parse_url(env, "BINANCE_REST_URL", "https://fapi.binance.com", ("http", "https"))
    return Config(
        mongo_uri=_parse_mongo_uri(mongo_uri_raw or EMBEDDED_MONGO_URI),
        mongo_database=_parse_name(env, "MONGO_DATABASE", "binancews"),
        binance_ws_url=ws_url,
        binance_rest_url=rest_url,
        source=_source(env, ws_url, rest_url),
        binance_archive_url=_parse_url(env, "BINANCE_ARCHIVE_URL", "https://data.binance.vision", ("http", "https")),
        **_symbols(env),
        symbols_refresh_seconds=_parse_positive(env, "KLINE_SYMBOLS_REFRESH_SECONDS", 3600.0),
        intervals=_intervals(env),
        timezone=_parse_timezone(env.get("KLINE_TIMEZONE", "UTC").strip()),
        secret_key=secret_key,
        debug=debug,
        allowed_hosts=allowed_hosts or ("*",),
        https=_parse_bool(env, "DJANGO_HTTPS", default=not debug),
        csrf_trusted_origins=_parse_origins(env, "DJANGO_CSRF_TRUSTED_ORIGINS"),
        proxy_ssl_header=_parse_header(env, "DJANGO_SECURE_PROXY_SSL_HEADER"),
        ws_allowed_origins=_parse_list(env.get("WS_ALLOWED_ORIGINS", "")),
        redis_url=env.get("REDIS_URL", "").strip(),
        poll_seconds=_parse_positive(env, "KLINE_POLL_SECONDS", 1.0),
        ws_max_pending_bytes=int(_parse_positive(env, "WS_MAX_PENDING_BYTES", 512 * 1024)),
        ws_max_connections=_parse_count(env, "WS_MAX_CONNECTIONS", 10_000),
        health_grace_seconds=_parse_positive(env, "HEALTH_GRACE_SECONDS", 30.0),
        metrics_allowed_ips=_parse_networks(env),
        blocks=_parse_bool(env, "KLINE_BLOCKS", default=True),
        embedded_mongo=not mongo_uri_raw,
        streams_per_connection=_parse_count(env, "KLINE_STREAMS_PER_CONNECTION", 1024),
        silence_seconds=_parse_positive(env, "KLINE_SILENCE_SECONDS", 30.0),
        reconnect_max_seconds=_parse_positive(env, "KLINE_RECONNECT_MAX_SECONDS", 30.0),
        stats_seconds=_parse_positive(env, "KLINE_STATS_SECONDS", 60.0),
        queue_size=_parse_count(env, "KLINE_QUEUE_SIZE", 10_000),
        rest_weight_per_minute=_parse_count(env, "BINANCE_REST_WEIGHT_PER_MINUTE", 1200),
        repair_seconds=_parse_positive(env, "KLINE_REPAIR_SECONDS", 300.0),
        history=_parse_history(env),
        mark_prices=_parse_bool(env, "KLINE_MARK_PRICES", default=True),
        metrics_port=_parse_port(env, "KLINE_METRICS_PORT"),
        metrics_address=_parse_address(env, "KLINE_METRICS_ADDRESS", "127.0.0.1"),
    )
