"""Pure: which exchange's klines a configuration records (the record's source), from its URLs and ``KLINE_SOURCE``.

The source decides the data, not the address it is reached at:

* ``binance-usdm``: both ``BINANCE_REST_URL`` and ``BINANCE_WS_URL`` are hosts of
  Binance's USD-M futures (any of them, any port or path);
* ``simulated:seed=S,speed=X[,epoch=MS]``: the simulated exchange, at any address. Its
  series is a pure function of the seed; its clock runs ``speed`` times the wall
  clock from ``epoch`` (irrelevant, and dropped, at speed 1);
* any other name the operator sets in ``KLINE_SOURCE`` for any other exchange.

One line names the variable to fix when REST and the stream are not the same exchange,
or when another exchange has no name.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

BINANCE_USDM = "binance-usdm"
# fapi/fstream are in Binance's docs; the numbered, -gcp and -mm hosts are the alternatives clients use.
BINANCE_USDM_REST_HOSTS = frozenset(
    {
        "fapi.binance.com",
        "fapi1.binance.com",
        "fapi2.binance.com",
        "fapi3.binance.com",
        "fapi4.binance.com",
        "fapi-gcp.binance.com",
        "fapi-mm.binance.com",
    }
)
BINANCE_USDM_WS_HOSTS = frozenset({"fstream.binance.com", "fstream-mm.binance.com", "fstream-auth.binance.com"})
SIMULATED = "simulated:"
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:=,/+-]{0,99}$")
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


class SourceError(ValueError):
    """The configured URLs and ``KLINE_SOURCE`` name no single exchange; the message says what to set."""


def is_binance_usdm_rest(url: str) -> bool:
    return (urlsplit(url).hostname or "") in BINANCE_USDM_REST_HOSTS


def record_source(*, ws_url: str, rest_url: str, name: str = "") -> str:
    """The source whose klines the stream at ``ws_url`` and REST at ``rest_url`` give; ``name``: ``KLINE_SOURCE``."""
    name = name.strip()
    ws_binance = (urlsplit(ws_url).hostname or "") in BINANCE_USDM_WS_HOSTS
    rest_binance = is_binance_usdm_rest(rest_url)
    if ws_binance != rest_binance:
        other, url = ("BINANCE_REST_URL", rest_url) if ws_binance else ("BINANCE_WS_URL", ws_url)
        raise SourceError(
            f"{other}: {url!r} is not Binance USD-M's, but the other URL is; the stream and REST must be "
            "the same exchange (klines of two exchanges never mix)"
        )
    if ws_binance:
        if name and name != BINANCE_USDM:
            raise SourceError(
                f"KLINE_SOURCE: {name!r} names another exchange, but BINANCE_WS_URL and BINANCE_REST_URL are "
                f"Binance USD-M's; leave KLINE_SOURCE unset (or {BINANCE_USDM})"
            )
        return BINANCE_USDM
    if not name:
        raise SourceError(
            f"KLINE_SOURCE must name the exchange at {rest_url} (it is not Binance USD-M's), e.g. "
            "KLINE_SOURCE=my-exchange; the simulated exchange prints its own (make simulate sets it)"
        )
    if name.startswith(SIMULATED):
        if not same_address(ws_url, rest_url):
            raise SourceError(
                f"BINANCE_WS_URL: {ws_url!r} and BINANCE_REST_URL {rest_url!r} are two addresses, but one "
                "simulated exchange serves both on one port"
            )
        return simulated_source(**_simulated_parts(name))
    if not _NAME_RE.match(name):
        raise SourceError(
            f"KLINE_SOURCE: {name!r} is not a source name (up to 100 letters, digits and ._:=,/+-, e.g. my-exchange)"
        )
    return name


def simulated_source(*, seed: int, speed: float, epoch: int | None = None) -> str:
    """The simulated exchange's source: what decides its series (the seed) and its clock (speed, epoch)."""
    text = f"{SIMULATED}seed={seed},speed={speed:g}"
    if speed != 1:
        if epoch is None:
            raise SourceError(
                f"KLINE_SOURCE: the simulated exchange at speed {speed:g} needs its epoch=MS "
                "(simulate_exchange prints its KLINE_SOURCE)"
            )
        text += f",epoch={epoch}"
    return text


def _simulated_parts(name: str) -> dict[str, int | float]:
    parts: dict[str, int | float] = {}
    for item in name[len(SIMULATED) :].split(","):
        key, _, value = item.partition("=")
        try:
            parts[key.strip()] = float(value) if key.strip() == "speed" else int(value)
        except ValueError:
            raise SourceError(f"KLINE_SOURCE: {item!r} in {name!r} is not a number") from None
    if set(parts) - {"seed", "speed", "epoch"} or not {"seed", "speed"} <= set(parts) or not parts["speed"] > 0:
        raise SourceError(f"KLINE_SOURCE: {name!r} is not simulated:seed=N,speed=X[,epoch=MS] with X > 0")
    return parts


def without_credentials(url: str) -> str:
    """``url`` without its ``user:password@`` (what is kept in the database and shown in messages)."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def same_address(url: str, other: str) -> bool:
    """The same host and port (``localhost``, ``127.0.0.1`` and ``::1`` are one host)."""
    return _address(url) == _address(other)


def _address(url: str) -> tuple[str, int | None]:
    """Host and port, with every name of this machine's loopback as one."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in _LOOPBACK or host.startswith("127."):
        host = "loopback"
    return host, parts.port or _DEFAULT_PORTS.get(parts.scheme)
