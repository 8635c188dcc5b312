"""Configuration: sane defaults, and one clear line naming the variable when a value is bad."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from binancews.config import EMBEDDED_MONGO_URI, ConfigError, load_config
from klines.testing.servers import ROOT, service_env

DEV = {"DJANGO_DEBUG": "true"}  # local development: the development secret key, any host
CLEAN = {"PATH": "/usr/bin:/bin", "BINANCEWS_ENV_FILE": ""}  # a subprocess's environment, no .env


def test_debug_is_off_by_default_and_then_needs_a_secret_key() -> None:
    with pytest.raises(ConfigError, match="^DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off"):
        load_config({})
    config = load_config({"DJANGO_SECRET_KEY": "k" * 50, "DJANGO_ALLOWED_HOSTS": "binancews.example.com"})
    assert not config.debug
    assert config.https  # production: https redirect, secure cookies, HSTS
    assert config.allowed_hosts == ("binancews.example.com",)


def test_defaults_run_locally() -> None:
    config = load_config(DEV)
    assert config.mongo_uri == EMBEDDED_MONGO_URI
    assert config.embedded_mongo
    assert config.mongo_database == "binancews"
    assert config.binance_ws_url == "wss://fstream.binance.com/market"
    assert config.binance_rest_url == "https://fapi.binance.com"
    assert config.symbols == ("btcusdt", "bnbusdt", "ethusdt", "solusdt", "xrpusdt")
    assert (config.interval, config.timezone) == ("1m", "UTC")
    assert config.debug
    assert not config.https
    assert config.ws_allowed_origins == ()
    assert (config.csrf_trusted_origins, config.proxy_ssl_header) == ((), "")


def test_values_are_read_and_normalised() -> None:
    config = load_config(
        {
            **DEV,
            "MONGO_URI": "mongodb://db.internal:27017/",
            "KLINE_SYMBOLS": " ETHUSDT, btcusdt ,ethusdt",
            "KLINE_INTERVAL": "5m",
            "KLINE_TIMEZONE": "Europe/Berlin",
            "WS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "DJANGO_CSRF_TRUSTED_ORIGINS": "https://binancews.example.com/, https://*.example.org",
            "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            "DJANGO_HTTPS": "true",
        }
    )
    assert config.symbols == ("ethusdt", "btcusdt")
    assert config.interval_seconds == 300
    assert not config.embedded_mongo
    assert config.ws_allowed_origins == ("https://a.example", "https://b.example")
    assert config.csrf_trusted_origins == ("https://binancews.example.com", "https://*.example.org")
    assert (config.proxy_ssl_header, config.https) == ("X-Forwarded-Proto", True)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KLINE_INTERVAL": "2m"}, "KLINE_INTERVAL"),
        ({"KLINE_SYMBOLS": " , "}, "KLINE_SYMBOLS"),
        ({"KLINE_SYMBOLS": "btc-usdt"}, "KLINE_SYMBOLS"),
        ({"KLINE_TIMEZONE": "Mars/Olympus"}, "KLINE_TIMEZONE"),
        ({"MONGO_URI": "postgres://localhost/db"}, "MONGO_URI"),
        ({"MONGO_URI": "mongodb://"}, "MONGO_URI"),
        ({"MONGO_DATABASE": "bad name"}, "MONGO_DATABASE"),
        ({"BINANCE_WS_URL": "https://fstream.binance.com"}, "BINANCE_WS_URL"),
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
        ({"DJANGO_DEBUG": "false", "DJANGO_ALLOWED_HOSTS": "example.com"}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "s3cret"}, "DJANGO_ALLOWED_HOSTS"),
        ({"KLINE_POLL_SECONDS": "0"}, "KLINE_POLL_SECONDS"),
        ({"DJANGO_CSRF_TRUSTED_ORIGINS": "binancews.example.com"}, "DJANGO_CSRF_TRUSTED_ORIGINS"),
        ({"DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https"}, "DJANGO_SECURE_PROXY_SSL_HEADER"),
        ({"DJANGO_HTTPS": "sometimes"}, "DJANGO_HTTPS"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config({**DEV, **env})


def test_an_origin_with_a_credential_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError, match="DJANGO_CSRF_TRUSTED_ORIGINS") as refused:
        load_config({**DEV, "DJANGO_CSRF_TRUSTED_ORIGINS": "https://ops:0rigin-pw@binancews.example.com"})
    assert "0rigin-pw" not in str(refused.value)


def test_a_klines_collection_other_than_the_migrated_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="^MONGO_COLLECTION: 'candles' is no longer supported; the klines collection"):
        load_config({**DEV, "MONGO_COLLECTION": "candles"})
    assert load_config({**DEV, "MONGO_COLLECTION": "klines"}).mongo_database == "binancews"  # the one name left


def test_bad_value_stops_start_up_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**CLEAN, **DEV, "KLINE_TIMEZONE": "Nowhere/Land"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "binancews: configuration error: KLINE_TIMEZONE: unknown time zone 'Nowhere/Land'; "
        "use an IANA name such as 'UTC' or 'Europe/Berlin'"
    ]
    assert "Traceback" not in result.stderr


def test_production_without_secret_key_fails_fast_under_daphne() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import binancews.asgi"],
        cwd=ROOT,
        env={**CLEAN, "DJANGO_ALLOWED_HOSTS": "example.com"},  # DJANGO_DEBUG unset: off
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "DJANGO_SECRET_KEY must be set" in result.stderr
    assert "Traceback" not in result.stderr


def _symbols_seen(env: dict[str, str]) -> str:
    """The symbols a process of the service sees with ``env`` (settings loaded as Django does)."""
    code = "import django; django.setup(); from django.conf import settings; print(*settings.BINANCEWS.symbols)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


DEFAULT_SYMBOLS = "btcusdt bnbusdt ethusdt solusdt xrpusdt"


@pytest.fixture
def dotenv(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text("KLINE_SYMBOLS=dogeusdt\nDJANGO_DEBUG=true\n")
    return path


def test_settings_read_the_env_file(dotenv: Path) -> None:
    env = {**CLEAN, "DJANGO_SETTINGS_MODULE": "binancews.settings", "BINANCEWS_ENV_FILE": str(dotenv)}
    assert _symbols_seen(env) == "dogeusdt"


def test_the_tests_and_their_subprocesses_ignore_a_env_file(dotenv: Path) -> None:
    # As if the developer's shell pointed at their .env: the test settings and service_env override it.
    env = {**CLEAN, **DEV, "BINANCEWS_ENV_FILE": str(dotenv)}
    assert (
        _symbols_seen({**env, "DJANGO_SETTINGS_MODULE": "tests.settings"}) == "btcusdt bnbusdt ethusdt solusdt xrpusdt"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BINANCEWS_ENV_FILE", str(dotenv))
        subprocess_env = service_env(EMBEDDED_MONGO_URI, "binancews")
    assert _symbols_seen({**subprocess_env, "PATH": CLEAN["PATH"]}) == DEFAULT_SYMBOLS


def test_the_tests_subprocesses_never_reach_binances_archive() -> None:
    # A backfill a test did not point at a simulated exchange's archive once waited on DNS for Binance's
    # public archive, file by file (95 s of the freqtrade test's setup): it must be refused locally, at once.
    config = load_config({**CLEAN, **service_env(EMBEDDED_MONGO_URI, "binancews")})
    assert urlsplit(config.binance_archive_url).hostname == "127.0.0.1"


def test_the_test_process_settings_come_from_the_environment_only() -> None:
    from django.conf import settings

    assert load_config(dict(os.environ)) == settings.BINANCEWS


def test_several_intervals_in_order_the_first_is_the_default_of_the_feed() -> None:
    config = load_config({**DEV, "KLINE_INTERVALS": "5m, 1m,5m,1h"})
    assert config.intervals == ("5m", "1m", "1h")
    assert config.interval == config.serving.interval == "5m"
    assert config.ingest.streams[:3] == (("btcusdt", "5m"), ("btcusdt", "1m"), ("btcusdt", "1h"))


def test_kline_interval_is_a_one_interval_alias() -> None:
    assert load_config({**DEV, "KLINE_INTERVAL": "15m"}).intervals == ("15m",)
    assert load_config({**DEV, "KLINE_INTERVAL": "15m", "KLINE_INTERVALS": "1m,1h"}).intervals == ("1m", "1h")


def test_calendar_months_are_refused_with_a_reason() -> None:
    with pytest.raises(ConfigError, match=r"KLINE_INTERVALS: 1M \(calendar months\) is not recorded"):
        load_config({**DEV, "KLINE_INTERVALS": "1m,1M"})
    with pytest.raises(ConfigError, match="KLINE_INTERVALS: unknown interval '7m'"):
        load_config({**DEV, "KLINE_INTERVALS": "1m,7m"})


def test_all_symbols_feeds_the_seed_s_five_unless_feed_symbols_says_otherwise() -> None:
    config = load_config({**DEV, "KLINE_SYMBOLS": "all"})
    assert (config.all_symbols, config.symbols) == (True, ())
    assert config.feed_symbols == ("btcusdt", "bnbusdt", "ethusdt", "solusdt", "xrpusdt")
    assert config.serving.recorded_symbols is None and config.ingest.all_symbols
    assert load_config({**DEV, "KLINE_SYMBOLS": "all", "FEED_SYMBOLS": "dogeusdt"}).feed_symbols == ("dogeusdt",)
    assert load_config({**DEV, "KLINE_SYMBOLS": "ethusdt,btcusdt"}).feed_symbols == ("ethusdt", "btcusdt")


def test_feed_symbols_must_be_recorded() -> None:
    with pytest.raises(ConfigError, match="FEED_SYMBOLS: dogeusdt not in KLINE_SYMBOLS"):
        load_config({**DEV, "KLINE_SYMBOLS": "btcusdt", "FEED_SYMBOLS": "btcusdt,dogeusdt"})
