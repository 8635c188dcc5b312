"""A wrong or unreachable database: one line naming the URI (password hidden), within seconds, from every process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from binancews.credentials import join_credentials
from binancews.database_check import database_problem, settings_database_problem
from binancews.redact import redact_uris, uri_passwords
from klines.testing.servers import SecantusServer, daphne, exchange_urls, free_port, manage, service_env
from tests.helpers import Ingest, wait_until

PASSWORD = "s3cret-pa55"


def closed_port_uri() -> str:
    return f"mongodb://binancews:{PASSWORD}@127.0.0.1:{free_port()}/"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("mongodb://user:pa55@db:27017/?authSource=admin", "mongodb://user:***@db:27017/?authSource=admin"),
        ("redis://:pa55@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("mongodb+srv://u:p%40ss@cluster.example.net/db", "mongodb+srv://u:***@cluster.example.net/db"),
        ("at mongodb://db:27017/ and redis://h:1/0", "at mongodb://db:27017/ and redis://h:1/0"),
        ("{'host': 'mongodb://a:b@h'}", "{'host': 'mongodb://a:***@h'}"),
    ],
)
def test_uri_passwords_are_redacted(text: str, redacted: str) -> None:
    assert redact_uris(text) == redacted


def test_passwords_are_found_as_written_and_decoded() -> None:
    assert uri_passwords("mongodb+srv://u:p%40ss@h/", "redis://h:1/0") == {"p%40ss", "p@ss"}


def test_a_reachable_database_has_no_problem(secantus: SecantusServer) -> None:
    assert database_problem(secantus.uri) is None


def test_a_refused_password_is_named(secantus: SecantusServer) -> None:
    problem = database_problem(f"mongodb://binancews:{PASSWORD}@127.0.0.1:{secantus.port}/?directConnection=true")
    assert problem is not None
    assert problem.startswith(
        f"binancews: cannot log in to MongoDB at mongodb://binancews:***@127.0.0.1:{secantus.port}/"
    )
    assert "authentication failed" in problem.lower() and PASSWORD not in problem


@pytest.mark.e2e
@pytest.mark.parametrize(
    "command", [["klines_status"], ["migrate", "--noinput"], ["createsuperuser", "--noinput", "--username", "a"]]
)
def test_a_command_that_needs_the_database_stops_in_one_line(command: list[str]) -> None:
    uri = closed_port_uri()
    process = manage(command, service_env(uri, "binancews"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=30)  # pymongo alone would take ~8 s and print a ~100-line traceback
    assert process.returncode == 1
    port = uri.rsplit(":", 1)[1].rstrip("/")
    assert err.splitlines() == [
        f"binancews: cannot reach MongoDB at mongodb://binancews:***@127.0.0.1:{port}/ "
        f"(127.0.0.1:{port}: [Errno 111] Connection refused); check MONGO_URI"
    ]
    assert PASSWORD not in out + err


@pytest.mark.e2e
def test_the_ingest_says_so_in_one_line_and_keeps_running(tmp_path: Path) -> None:
    env = service_env(closed_port_uri(), "binancews", **exchange_urls(free_port()))
    ingest = Ingest(env, tmp_path).start()
    try:
        wait_until(lambda: "cannot reach MongoDB" in ingest.log, timeout=30, what="the database line")
        wait_until(lambda: "ingesting ws://" in ingest.stdout, timeout=30, what="the ingest to go on")
        assert ingest.alive()
        lines = [line for line in ingest.log.splitlines() if "MongoDB" in line]
        assert lines[0].startswith("binancews: cannot reach MongoDB at mongodb://binancews:***@127.0.0.1:")
        assert lines[0].endswith("; check MONGO_URI; the ingest reads the exchange once it answers")
        assert PASSWORD not in ingest.log + ingest.stdout
        wait_until(lambda: "nothing is read from the exchange" in ingest.log, timeout=30, what="the claim's wait")
        code, took = ingest.stop()  # amid pymongo's 5 s wait for the server
        assert (code, took < 5) == (0, True), took
    finally:
        if ingest.alive():
            ingest.stop()


@pytest.mark.e2e
def test_daphne_says_so_in_one_line_and_keeps_serving(tmp_path: Path) -> None:
    log_path = tmp_path / "daphne.log"
    process = daphne(free_port(), service_env(closed_port_uri(), "binancews"), log_path)
    try:
        line = wait_until(
            lambda: next((ln for ln in log_path.read_text().splitlines() if "cannot reach MongoDB" in ln), None),
            timeout=30,
            what="the database line",
        )
        assert "mongodb://binancews:***@127.0.0.1:" in line and line.endswith("serving goes on and retries")
        assert process.poll() is None
        assert PASSWORD not in log_path.read_text()
    finally:
        process.terminate()
        process.wait(10)


def test_django_s_own_database_settings_have_no_problem(django_db_setup: None) -> None:
    """Django fills in ``USER`` and ``PASSWORD`` as empty strings: no credentials, not an empty user name
    (daphne's start-up check said "cannot reach MongoDB at mongodb://:@..." for an embedded database)."""
    from django.conf import settings
    from django.db import connections

    assert connections["default"].settings_dict["USER"] == ""  # what Django puts in the settings
    assert settings.DATABASES["default"]["PASSWORD"] == ""
    assert settings_database_problem() is None


def test_empty_credentials_leave_the_uri_alone() -> None:
    assert join_credentials("mongodb://127.0.0.1:27117/?directConnection=true", "", "") == (
        "mongodb://127.0.0.1:27117/?directConnection=true"
    )
    assert join_credentials("mongodb://h/", "u", "") == "mongodb://u:@h/"
