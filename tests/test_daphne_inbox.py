"""daphne_patches.inbox: daphne hands each application instance a small inbox that behaves as its asyncio.Queue did."""

from __future__ import annotations

import asyncio

import pytest

from binancews.daphne_patches import inbox as daphne_inbox
from binancews.daphne_patches.inbox import Inbox


async def test_messages_come_out_in_order_whether_put_before_or_while_waiting() -> None:
    inbox = Inbox()
    inbox.put_nowait("connect")
    assert await inbox.get() == "connect"
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.put_nowait("receive")
    inbox.put_nowait("disconnect")
    assert await waiting == "receive"
    assert await inbox.get() == "disconnect"
    assert inbox.empty()


async def test_a_cancelled_get_loses_no_message() -> None:
    inbox = Inbox()
    first = asyncio.ensure_future(inbox.get())
    second = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("disconnect")  # wakes ``first``, which is cancelled before it runs
    first.cancel()
    assert await second == "disconnect"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_daphne_gives_the_application_an_inbox_it_reads_from(monkeypatch: pytest.MonkeyPatch) -> None:
    from daphne.server import Server

    monkeypatch.setattr(Server, "create_application", Server.create_application)
    received = asyncio.Queue()

    async def application(scope, receive, send) -> None:
        await received.put((scope["type"], await receive()))

    assert daphne_inbox.install()
    server = Server(application, endpoints=["tcp:port=0:interface=127.0.0.1"])  # never run: nothing listens
    protocol = object()
    server.connections = {}  # what Server.run() sets up
    server.protocol_connected(protocol)
    inbox = server.create_application(protocol, {"type": "websocket"})
    assert isinstance(inbox, Inbox)
    inbox.put_nowait({"type": "websocket.connect"})
    assert await asyncio.wait_for(received.get(), 5) == ("websocket", {"type": "websocket.connect"})
    await server.connections[protocol]["application_instance"]
