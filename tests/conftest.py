"""Shared fixtures: a real SecantusDB server for the whole session, migrated databases, a fresh feed per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo import monitoring

from klines.testing.servers import RedisServer, SecantusServer
from tests.helpers import migrate


class ReadCounter(monitoring.CommandListener):
    """Counts read commands (find/aggregate) every MongoClient in this process sends; keeps the pipelines."""

    def __init__(self) -> None:
        self.reads = 0
        self.pipelines: list[list[dict]] = []
        self.commands: list[tuple[str, str, dict]] = []  # reads as (command, collection, the command sent)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "aggregate", "count", "distinct"):
            self.commands.append((event.command_name, event.command[event.command_name], dict(event.command)))
        if event.command_name in ("find", "aggregate", "count"):
            self.reads += 1
        if event.command_name == "aggregate":
            self.pipelines.append(list(event.command["pipeline"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


READS = ReadCounter()
monitoring.register(READS)  # before Django creates its client


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end and browser files first: under ``--dist loadfile`` a long file handed out last would
    keep one worker busy after the other has finished."""
    items.sort(key=lambda item: not (item.get_closest_marker("e2e") or item.get_closest_marker("browser")))


@pytest.fixture
def mongo_reads() -> ReadCounter:
    return READS


@pytest.fixture(scope="session")
def secantus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecantusServer]:
    server = SecantusServer(tmp_path_factory.mktemp("secantus") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(secantus: SecantusServer) -> None:
    """Point Django at the session's SecantusDB before the test database is created."""
    from django.conf import settings

    settings.DATABASES["default"]["HOST"] = secantus.uri


@pytest.fixture
def database(secantus: SecantusServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A freshly migrated database on the session's SecantusDB, for subprocesses of the service; dropped after."""
    name = f"{request.module.__name__.rpartition('test_')[2]}_{uuid.uuid4().hex[:8]}"
    migrate(secantus.uri, name)
    yield name
    pymongo.MongoClient(secantus.uri).drop_database(name)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free port, for the channel layer of several processes."""
    server = RedisServer(tmp_path / "redis.log").start()
    yield server
    server.stop()


@pytest.fixture
def browser_factory(tmp_path: Path) -> Iterator[Callable[[int, int], Any]]:
    """Start headless Chromium windows of a given size (each with its own profile); all quit after the test."""
    from klines.testing.browser import start_chromium

    drivers: list[Any] = []

    def start(width: int, height: int) -> Any:
        driver = start_chromium(width=width, height=height, profile_dir=tmp_path / f"profile-{len(drivers)}")
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()


@pytest.fixture(autouse=True)
def _fresh_feed() -> Iterator[None]:
    """Each test gets its own process-wide live feed."""
    from klines.serving.feed import reset_feed

    reset_feed()
    yield
    reset_feed()
