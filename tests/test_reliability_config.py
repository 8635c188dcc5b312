"""The ingest's reliability settings: defaults, and one clear error per bad value."""

from __future__ import annotations

import pytest

from binancews.config import ConfigError, load_config

DEV = {"DJANGO_DEBUG": "true"}


def test_defaults() -> None:
    config = load_config(DEV)
    assert config.streams_per_connection == 1024
    assert config.silence_seconds == 30.0
    assert config.reconnect_max_seconds == 30.0
    assert config.stats_seconds == 60.0
    assert config.queue_size == 10_000
    assert config.rest_weight_per_minute == 1200


def test_values_are_read_from_the_environment() -> None:
    config = load_config(
        {
            **DEV,
            "KLINE_STREAMS_PER_CONNECTION": "200",
            "KLINE_SILENCE_SECONDS": "2.5",
            "KLINE_RECONNECT_MAX_SECONDS": "10",
            "KLINE_STATS_SECONDS": "15",
            "KLINE_QUEUE_SIZE": "500",
            "BINANCE_REST_WEIGHT_PER_MINUTE": "600",
        }
    )
    assert (config.streams_per_connection, config.silence_seconds, config.reconnect_max_seconds) == (200, 2.5, 10.0)
    assert (config.stats_seconds, config.queue_size, config.rest_weight_per_minute) == (15.0, 500, 600)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KLINE_STREAMS_PER_CONNECTION", "0"),
        ("KLINE_STREAMS_PER_CONNECTION", "lots"),
        ("KLINE_QUEUE_SIZE", "-1"),
        ("KLINE_QUEUE_SIZE", "1.5"),
        ("BINANCE_REST_WEIGHT_PER_MINUTE", "0"),
        ("KLINE_SILENCE_SECONDS", "0"),
        ("KLINE_RECONNECT_MAX_SECONDS", "never"),
        ("KLINE_STATS_SECONDS", "-60"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: '{value}'"):
        load_config({**DEV, name: value})
