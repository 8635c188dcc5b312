"""Client limits on ``/``: message size, message rate, connections per process."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
import websocket
from channels.testing import WebsocketCommunicator

from binancews.asgi import application
from klines.testing.servers import daphne, free_port, service_env, stop_process
from tests.helpers import connected


async def closed_with(communicator: WebsocketCommunicator) -> dict:
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    return message


@pytest.mark.django_db(transaction=True)
async def test_a_message_over_4_kb_closes_the_connection_with_1009() -> None:
    communicator = await connected()
    await communicator.send_to(text_data="x" * 4096)  # at the limit: ignored
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.send_to(text_data="x" * 4097)
    assert (await closed_with(communicator))["code"] == 1009
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_binary_message_over_4_kb_closes_the_connection_with_1009() -> None:
    communicator = await connected()
    await communicator.send_to(bytes_data=b"\x00" * 5000)
    assert (await closed_with(communicator))["code"] == 1009
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_ten_messages_a_second_are_ignored_the_eleventh_closes_with_1008() -> None:
    communicator = await connected()
    for _ in range(10):
        await communicator.send_to(text_data="ping")
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.send_to(text_data="ping")
    assert (await closed_with(communicator))["code"] == 1008
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_steady_client_under_the_rate_stays_open() -> None:
    communicator = await connected()
    for _ in range(3):
        for _ in range(8):
            await communicator.send_to(text_data="ping")
        await asyncio.sleep(1.05)
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_past_ws_max_connections_a_client_is_refused_with_1013_and_a_reason(settings) -> None:
    settings.BINANCEWS = replace(settings.BINANCEWS, ws_max_connections=2)
    first, second = await connected(), await connected()
    third = WebsocketCommunicator(application, "/")
    assert (await third.connect())[0]  # accepted, then closed: a handshake refusal carries no code
    refusal = await closed_with(third)
    assert refusal["code"] == 1013
    assert refusal["reason"] == "server full, try again later"
    await third.disconnect()
    await first.disconnect()
    fourth = await connected()  # a place came free
    for communicator in (second, fourth):
        await communicator.disconnect()


@pytest.mark.e2e
def test_under_daphne_the_refusal_reaches_the_client_with_1013_and_its_reason(
    secantus, database: str, tmp_path: Path
) -> None:
    env = service_env(secantus.uri, database, WS_MAX_CONNECTIONS="1")
    port = free_port()
    log = tmp_path / "daphne.log"
    server = daphne(port, env, log)
    try:
        first = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=20)
        assert json.loads(first.recv())["coin"] == "BTCUSDT"
        second = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=20)
        opcode, data = second.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 1013
        assert data[2:] == b"server full, try again later"
        first.close()
        second.close()
    finally:
        stop_process(server)
    assert "Traceback" not in log.read_text()
