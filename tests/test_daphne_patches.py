"""The daphne patches: each fits the upstream code it was written against, and runs only on those versions.

One test per patch fails when an upgrade changes what the patch copies, wraps or
reads (the source of those functions, the fields and names it uses); the guard
tests run the service's real entry point with a different version installed.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from binancews import daphne_patches
from binancews.daphne_patches import backpressure, close, inbox, prepared, reaping, tuning
from binancews.daphne_patches.upstream import installed_version, source_digest
from klines.testing.servers import ROOT, service_env


def assert_written_for_what_is_installed(patch: object) -> None:
    """The patch's versions are the installed ones, and the upstream code it relies on is unchanged."""
    assert {name: installed_version(name) for name in patch.REQUIRES} == patch.REQUIRES
    changed = [target for target, digest in patch.UPSTREAM.items() if source_digest(target) != digest]
    assert not changed, f"upstream code under daphne_patches.{daphne_patches.patch_name(patch)} changed: {changed}"


def test_tuning_fits_autobahn() -> None:
    assert_written_for_what_is_installed(tuning)
    import autobahn.websocket.protocol as protocol
    import txaio
    from autobahn import util

    # The protocol's methods look the formatters up as the module's globals, so replacing those reaches them.
    source = inspect.getsource(protocol)
    assert re.search(r"^from pprint import pformat$", source, re.MULTILINE)
    assert "hltype" in protocol.__dict__ and "hlval" in protocol.__dict__
    assert getattr(util.hltype, "__wrapped__", util.hltype) is getattr(protocol.hltype, "__wrapped__", protocol.hltype)
    assert txaio.get_global_log_level() in {"none", "critical", "error", "warn", "info", "debug", "trace"}


def test_close_fits_daphne_and_autobahn() -> None:
    assert_written_for_what_is_installed(close)
    from autobahn.websocket.types import ConnectionDeny
    from daphne.ws_protocol import WebSocketProtocol

    assert {"STATE_CONNECTING", "STATE_OPEN"} <= set(dir(WebSocketProtocol))
    parameters = inspect.signature(WebSocketProtocol.sendCloseFrame).parameters
    assert list(parameters) == ["self", "code", "reasonUtf8", "isReply"]
    deny = ConnectionDeny(code=400, reason="unknown stream")
    assert (deny.code, deny.reason) == (400, "unknown stream")


def test_inbox_copies_daphne_s_create_application() -> None:
    assert_written_for_what_is_installed(inbox)
    from daphne.server import Server

    # daphne's send, which the copy builds as ``partial(server.handle_reply, protocol)``, is a coroutine function.
    assert inspect.iscoroutinefunction(Server.handle_reply)


def test_reaping_fits_daphne_autobahn_and_twisted() -> None:
    assert_written_for_what_is_installed(reaping)
    from autobahn.websocket.protocol import WebSocketProtocol
    from twisted.web.http import HTTPChannel

    assert "self.is_closed = txaio.create_future()" in inspect.getsource(WebSocketProtocol.__init__)
    assert HTTPChannel().requests == []  # the list an upgraded request stays in


def test_backpressure_reads_twisted_s_buffer_fields() -> None:
    assert_written_for_what_is_installed(backpressure)
    from twisted.internet.abstract import FileDescriptor

    transport = FileDescriptor()
    assert (transport.dataBuffer, transport.offset, transport._tempDataLen) == (b"", 0, 0)


def test_prepared_fits_daphne_autobahn_and_twisted() -> None:
    """The digests of what it rides on; tests/test_daphne_prepared.py checks the lines it relies on, one by one."""
    assert_written_for_what_is_installed(prepared)


def test_requirements_pin_the_versions_the_patches_were_written_for() -> None:
    pins = dict(line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line)
    for patch in daphne_patches.PATCHES:
        for name, version in patch.REQUIRES.items():
            assert pins.get(name) == version, f"requirements.txt: {name}=={version} ({patch.__name__})"


# The service's entry point, then which patches are in place.
PATCHES_IN_PLACE = """
import json, binancews.asgi
import autobahn.websocket.protocol as autobahn_protocol
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from binancews.daphne_patches import backpressure as patch
from klines.serving import backpressure
from functools import partial
from types import SimpleNamespace
from twisted.internet.abstract import FileDescriptor
buffered = FileDescriptor()
buffered.dataBuffer, buffered.offset, buffered._tempDataLen = b"abcd", 1, 5
print(json.dumps({
    "tuning": getattr(autobahn_protocol.pformat, "skips_when_not_debugging", False),
    "close": getattr(WebSocketProtocol.handle_reply, "sends_any_close_code", False),
    "inbox": getattr(getattr(Server.create_application, "__wrapped__", None), "uses_inbox", False),
    "reaping": getattr(Server.protocol_disconnected, "reaps_at_once", False)
    and getattr(Server.create_application, "reaps_at_once", False),
    "backpressure": backpressure.pending_bytes(None) is None and backpressure._reader is patch.pending_bytes
    and backpressure.pending_bytes(partial(print, SimpleNamespace(transport=buffered))) == 8,
    "prepared": hasattr(Server.handle_reply, "send_text_now"),
}))
"""


def patches_in_place(tmp_path: Path, **fake_versions: str) -> tuple[dict[str, bool], list[str]]:
    """Import ``binancews.asgi`` as daphne does, with ``fake_versions`` installed first on the path."""
    for name, version in fake_versions.items():
        info = tmp_path / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    env = service_env("mongodb://127.0.0.1:9/?directConnection=true", "binancews", PYTHONPATH=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", PATCHES_IN_PLACE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "binancews.daphne_patches" in line]
    return json.loads(result.stdout), lines


def test_every_patch_is_in_place_on_the_versions_it_was_written_for(tmp_path: Path) -> None:
    assert patches_in_place(tmp_path) == (
        dict.fromkeys(["tuning", "close", "inbox", "reaping", "backpressure", "prepared"], True),
        [],
    )


def test_an_unknown_version_leaves_its_patch_off_with_one_line_and_the_others_on(tmp_path: Path) -> None:
    in_place, lines = patches_in_place(tmp_path, txaio="99.1.0")
    assert in_place == {
        "tuning": False,
        "close": True,
        "inbox": True,
        "reaping": True,
        "backpressure": True,
        "prepared": True,
    }
    assert len(lines) == 1
    assert lines[0].endswith(
        "WARNING binancews.daphne_patches: daphne patch tuning is off, running unpatched: written for txaio 26.6.1, "
        "installed txaio 99.1.0 (autobahn formats its debug messages on every connection and frame)"
    )


def test_another_daphne_runs_unpatched_but_for_autobahn_s_debug_messages(tmp_path: Path) -> None:
    in_place, lines = patches_in_place(tmp_path, daphne="4.3.0")
    assert in_place == {
        "tuning": True,
        "close": False,
        "inbox": False,
        "reaping": False,
        "backpressure": False,
        "prepared": False,
    }
    assert [re.search(r"daphne patch (\w+) is off", line)[1] for line in lines] == [
        "close",
        "inbox",
        "reaping",
        "backpressure",
        "prepared",
    ]
    assert all("written for daphne 4.2.3" in line and "installed daphne 4.3.0" in line for line in lines)


def test_a_changed_upstream_function_is_noticed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "upstream_sample.py"
    module.write_text("class Server:\n    def create_application(self):\n        return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = source_digest("upstream_sample:Server.create_application")
    module.write_text("class Server:\n    def create_application(self):\n        return 2\n")
    assert source_digest("upstream_sample:Server.create_application") != before
    with pytest.raises(LookupError, match="upstream_sample:Server.gone: no such function or class"):
        source_digest("upstream_sample:Server.gone")
