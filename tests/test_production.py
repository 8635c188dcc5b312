"""Production-safe by default: no secret on an error page or in a log, errors logged, the admin behind a TLS proxy.

Every check runs the real thing: daphne as the Procfile starts it, the DEBUG 500
page of a real failure (the database unreachable), ``manage.py check --deploy``.
"""

from __future__ import annotations

import http.client
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from klines.testing.servers import (
    BIN,
    ROOT,
    SecantusServer,
    free_port,
    manage,
    service_env,
    stop_process,
    wait_for_port,
)
from tests.helpers import wait_until

SECRET_KEY = "production-secret-key-" + "Zq8wT3vN" * 5  # 62 characters, as check --deploy wants
HOST = "binancews.example.com"
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": SECRET_KEY,
    "DJANGO_ALLOWED_HOSTS": HOST,
    "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://{HOST}",
}
MONGO_PASSWORD = "mongo-password-5tr4nge"
REDIS_PASSWORD = "redis-password-8ann4na"
SESSION_COOKIE = "sessionid=" + "0123456789abcdefghijklmnopqrstuv"  # well-formed: the store looks it up


def procfile_web(port: int) -> list[str]:
    """The Procfile's ``web`` command on ``port``, listening on 127.0.0.1 instead of every interface."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    args = shlex.split(line.removeprefix("web:").replace("$PORT", str(port)).replace("0.0.0.0", "127.0.0.1"))
    assert args[0] == "daphne"
    return [str(BIN / "daphne"), *args[1:]]


def uvicorn(port: int) -> list[str]:
    """The same application under uvicorn (README: switching servers is a deployment decision)."""
    return [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "binancews.asgi:application"]


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Callable[..., tuple[int, Path]]]:
    """Start the Procfile's web process with an environment; yields a starter returning (port, log path)."""
    processes: list[subprocess.Popen] = []

    def start(env: dict[str, str], server: str = "procfile") -> tuple[int, Path]:
        port = free_port()
        log_path = tmp_path / f"{server}-{port}.log"
        command = procfile_web(port) if server == "procfile" else uvicorn(port)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        wait_for_port(port, process=process)
        return port, log_path

    yield start
    for process in processes:
        stop_process(process)


def request(port: int, method: str, path: str, headers: dict[str, str], body: str = "") -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request(method, path, body=body or None, headers=headers)
    response = connection.getresponse()
    response.text = response.read().decode(errors="replace")  # type: ignore[attr-defined]
    connection.close()
    return response


def wrong_password_env(secantus: SecantusServer, **extra: str) -> dict[str, str]:
    """The service with a MongoDB password the server refuses (a real, quick failure), and a Redis password."""
    uri = f"mongodb://binancews:{MONGO_PASSWORD}@127.0.0.1:{secantus.port}/?directConnection=true"
    env = service_env(uri, "production")
    return {**env, "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0", **extra}


@pytest.mark.e2e
def test_debug_error_page_shows_no_secret(web: Callable, secantus: SecantusServer) -> None:
    port, log_path = web(wrong_password_env(secantus, DJANGO_DEBUG="true", DJANGO_SECRET_KEY=SECRET_KEY))
    # A session cookie makes the admin look the session up: the database refuses the login, a real 500.
    response = request(port, "GET", "/admin/", {"Cookie": SESSION_COOKIE, "Accept": "text/html"})
    assert response.status == 500
    page = response.text  # type: ignore[attr-defined]
    assert "OperationFailure" in page and "DATABASES" in page  # Django's technical 500 page
    assert f"mongodb://127.0.0.1:{secantus.port}/" in page  # the URI is shown, its password is not
    for secret in (SECRET_KEY, MONGO_PASSWORD, REDIS_PASSWORD):
        assert secret not in page
        assert secret not in log_path.read_text()


@pytest.mark.e2e
@pytest.mark.parametrize("server", ["procfile", "uvicorn"])  # daphne's root handler is not the service's logging
def test_server_errors_are_logged_with_their_traceback(web: Callable, secantus: SecantusServer, server: str) -> None:
    env = wrong_password_env(secantus, **PRODUCTION, DJANGO_HTTPS="false")
    port, log_path = web({**env, "DJANGO_ALLOWED_HOSTS": "127.0.0.1"}, server)
    response = request(port, "GET", "/admin/", {"Cookie": SESSION_COOKIE})
    assert response.status == 500
    assert "OperationFailure" not in response.text  # type: ignore[attr-defined]  # DEBUG is off
    log = wait_until(
        lambda: (text := log_path.read_text()) and "Internal Server Error" in text and text,
        timeout=20,
        what="the error in the log",
    )
    assert "Internal Server Error: /admin/" in log
    assert "Traceback (most recent call last)" in log
    assert "pymongo.errors.OperationFailure: authentication failed" in log
    assert log.count("Internal Server Error: /admin/") == 1  # once, not again through daphne's root handler
    for secret in (SECRET_KEY, MONGO_PASSWORD, REDIS_PASSWORD):
        assert secret not in log


@pytest.mark.e2e
def test_admin_login_works_behind_a_tls_terminating_proxy(
    web: Callable, secantus: SecantusServer, database: str
) -> None:
    env = service_env(secantus.uri, database, **PRODUCTION, DJANGO_HTTPS="true")  # as in production
    superuser = {"DJANGO_SUPERUSER_USERNAME": "admin", "DJANGO_SUPERUSER_EMAIL": "a@example.com"}
    superuser["DJANGO_SUPERUSER_PASSWORD"] = "correct horse battery"
    assert manage(["createsuperuser", "--noinput"], {**env, **superuser}).wait(60) == 0
    port, _ = web(env)
    # What Railway, Heroku or nginx forward: the client spoke https to the proxy.
    proxy = {"Host": HOST, "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}

    form = request(port, "GET", "/admin/login/?next=/admin/", proxy)
    assert form.status == 200
    assert form.headers["Strict-Transport-Security"].startswith("max-age=")
    cookie = SimpleCookie(form.headers["Set-Cookie"])
    assert cookie["csrftoken"]["secure"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)  # type: ignore[attr-defined]
    body = urlencode(
        {"csrfmiddlewaretoken": token, "username": "admin", "password": "correct horse battery", "next": "/admin/"}
    )
    login = request(
        port,
        "POST",
        "/admin/login/?next=/admin/",
        {
            **proxy,
            "Origin": f"https://{HOST}",
            "Referer": f"https://{HOST}/admin/login/",
            "Cookie": f"csrftoken={cookie['csrftoken'].value}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        body,
    )
    assert login.status == 302, login.text  # type: ignore[attr-defined]
    assert login.headers["Location"] == "/admin/"
    session = SimpleCookie()
    for header in login.headers.get_all("Set-Cookie"):
        session.load(header)
    assert session["sessionid"]["secure"]


def test_check_deploy_reports_nothing_in_production() -> None:
    env = {"PATH": "/usr/bin:/bin", "BINANCEWS_ENV_FILE": "", **PRODUCTION}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
