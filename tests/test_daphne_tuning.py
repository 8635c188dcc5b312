"""daphne_patches.tuning: autobahn formats its per-connection debug messages only when they are logged."""

from __future__ import annotations

import sys
from pprint import pformat

import pytest
import txaio

from binancews.daphne_patches import tuning as daphne_tuning

OPTIONS = [("autoPingInterval", 0, "WebSocketServerFactory"), ("openHandshakeTimeout", 5, "WebSocketServerFactory")]


@pytest.fixture
def protocol_module(monkeypatch: pytest.MonkeyPatch):
    """autobahn's protocol module as daphne loads it; its formatters restored afterwards."""
    import autobahn.twisted.websocket  # noqa: F401 - what daphne imports (selects txaio's twisted flavour)
    import autobahn.websocket.protocol as protocol

    for name in daphne_tuning.PATCHED:
        monkeypatch.setattr(protocol, name, getattr(protocol, name))
    level = txaio.get_global_log_level()
    yield protocol
    txaio.set_global_log_level(level)


def test_debug_messages_are_not_formatted_while_debug_logging_is_off(protocol_module) -> None:
    txaio.set_global_log_level("info")
    assert daphne_tuning.install()
    assert protocol_module.pformat(OPTIONS) == daphne_tuning.NOT_FORMATTED
    assert protocol_module.hltype(test_debug_messages_are_not_formatted_while_debug_logging_is_off) == (
        daphne_tuning.NOT_FORMATTED
    )
    assert protocol_module.hlval(512) == daphne_tuning.NOT_FORMATTED  # on every frame sent


def test_debug_logging_shows_what_it_showed_before(protocol_module) -> None:
    original_hltype, original_hlval = protocol_module.hltype, protocol_module.hlval
    daphne_tuning.install()
    txaio.set_global_log_level("debug")
    assert protocol_module.pformat(OPTIONS) == pformat(OPTIONS)
    assert protocol_module.hltype(pformat) == original_hltype(pformat)
    assert protocol_module.hlval(512) == original_hlval(512)


def test_install_twice_wraps_once(protocol_module) -> None:
    daphne_tuning.install()
    wrapped = protocol_module.pformat
    daphne_tuning.install()
    assert protocol_module.pformat is wrapped


def test_nothing_is_patched_when_autobahn_is_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, daphne_tuning.PROTOCOL_MODULE, raising=False)
    assert not daphne_tuning.install()
    assert daphne_tuning.PROTOCOL_MODULE not in sys.modules
