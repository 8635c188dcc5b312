"""The record's source is what decides the klines, not the address: pure checks of ``record_source`` and its
one-line configuration errors."""

from __future__ import annotations

import pytest

from binancews.config import ConfigError, load_config
from klines.binance.source import SourceError, record_source

DEV = {"DJANGO_DEBUG": "true"}
SIM = "simulated:seed=1,speed=1"


def test_binance_usd_m_by_default() -> None:
    assert load_config(DEV).source == "binance-usdm"


@pytest.mark.parametrize(
    ("ws_url", "rest_url"),
    [
        ("wss://fstream.binance.com/market", "https://fapi.binance.com"),
        ("wss://fstream.binance.com", "https://fapi1.binance.com"),
        ("wss://fstream-mm.binance.com/market", "https://fapi-mm.binance.com"),
        ("wss://fstream.binance.com:443/market", "https://fapi3.binance.com:443"),
    ],
)
def test_binance_s_alternative_hosts_are_the_same_source(ws_url: str, rest_url: str) -> None:
    assert record_source(ws_url=ws_url, rest_url=rest_url) == "binance-usdm"


def test_the_simulator_is_the_same_source_at_any_port_and_any_name_of_loopback() -> None:
    sources = {
        record_source(ws_url=f"ws://{host}:{port}/market", rest_url=f"http://{host}:{port}", name=SIM)
        for host, port in [("127.0.0.1", 9900), ("127.0.0.1", 9901), ("localhost", 9900), ("[::1]", 9902)]
    }
    assert sources == {SIM}
    # localhost for one, 127.0.0.1 for the other: one simulator all the same
    assert record_source(ws_url="ws://localhost:9900/market", rest_url="http://127.0.0.1:9900", name=SIM) == SIM


def test_the_simulator_s_speed_and_epoch_are_part_of_it() -> None:
    urls = {"ws_url": "ws://127.0.0.1:9900/market", "rest_url": "http://127.0.0.1:9900"}
    assert record_source(**urls, name="simulated:speed=1.0,seed=1,epoch=5") == SIM  # the epoch of speed 1: moot
    sped = record_source(**urls, name="simulated:seed=1,speed=60,epoch=1764800000000")
    assert sped == "simulated:seed=1,speed=60,epoch=1764800000000"
    assert record_source(**urls, name="simulated:seed=1,speed=60.0,epoch=1764800000000") == sped
    assert record_source(**urls, name="simulated:seed=1,speed=60,epoch=1764800000001") != sped
    assert record_source(**urls, name="simulated:seed=1,speed=2,epoch=1764800000000") != sped
    assert record_source(**urls, name="simulated:seed=2,speed=1") != SIM


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (  # Binance's stream, the simulator's REST
            {"BINANCE_REST_URL": "http://127.0.0.1:9900"},
            "BINANCE_REST_URL: 'http://127.0.0.1:9900' is not Binance USD-M's, but the other URL is",
        ),
        (
            {"BINANCE_WS_URL": "ws://127.0.0.1:9900/market", "KLINE_SOURCE": SIM},
            "BINANCE_WS_URL: 'ws://127.0.0.1:9900/market' is not Binance USD-M's, but the other URL is",
        ),
        (
            {"BINANCE_WS_URL": "ws://127.0.0.1:9900/market", "BINANCE_REST_URL": "http://127.0.0.1:9900"},
            "KLINE_SOURCE must name the exchange at http://127.0.0.1:9900",
        ),
        (  # two simulators: the stream of one, REST of the other
            {"BINANCE_WS_URL": "ws://127.0.0.1:9900/market", "BINANCE_REST_URL": "http://127.0.0.1:9901"}
            | {"KLINE_SOURCE": SIM},
            "BINANCE_WS_URL: 'ws://127.0.0.1:9900/market' and BINANCE_REST_URL 'http://127.0.0.1:9901' are two",
        ),
        ({"KLINE_SOURCE": "my-exchange"}, "KLINE_SOURCE: 'my-exchange' names another exchange"),
        (
            {"BINANCE_WS_URL": "ws://ex.example/ws", "BINANCE_REST_URL": "https://ex.example", "KLINE_SOURCE": "a b"},
            "KLINE_SOURCE: 'a b' is not a source name",
        ),
        (
            {"BINANCE_WS_URL": "ws://127.0.0.1:9/market", "BINANCE_REST_URL": "http://127.0.0.1:9"}
            | {"KLINE_SOURCE": "simulated:seed=1,speed=60"},
            "KLINE_SOURCE: the simulated exchange at speed 60 needs its epoch=MS",
        ),
        (
            {"BINANCE_WS_URL": "ws://127.0.0.1:9/market", "BINANCE_REST_URL": "http://127.0.0.1:9"}
            | {"KLINE_SOURCE": "simulated:seed=1,speed=0"},
            "KLINE_SOURCE: 'simulated:seed=1,speed=0' is not simulated:seed=N,speed=X[,epoch=MS] with X > 0",
        ),
    ],
)
def test_no_single_exchange_is_one_line_naming_the_variable(env: dict[str, str], line: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config({**DEV, **env})
    assert str(error.value).startswith(line)
    assert "\n" not in str(error.value)


def test_another_exchange_is_named_once_by_the_operator() -> None:
    urls = {"ws_url": "wss://stream.binancefuture.com", "rest_url": "https://testnet.binancefuture.com"}
    assert record_source(**urls, name="binance-usdm-testnet") == "binance-usdm-testnet"
    with pytest.raises(SourceError, match="^KLINE_SOURCE must name"):
        record_source(**urls)
