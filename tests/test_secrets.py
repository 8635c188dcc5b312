"""No credential from any setting reaches an error report (Django's own filter or ours, DEBUG on or off),
and the credentials still work: a Redis that requires a password, a MongoDB that requires a login.

Each case runs the service's real settings in a subprocess (``manage.py shell``) with every setting that
can carry a credential holding one, and looks at what an operator would see: ``get_safe_settings()`` of
both filters, the technical 500 page, and the error e-mail Django sends to ``ADMINS``.
"""

from __future__ import annotations

import html
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from binancews.credentials import join_credentials, mongo_database, redis_host, split_credentials
from klines.testing.servers import TEST_SOURCE, RedisServer, SecantusServer, free_port, manage, service_env

SECRET_KEY = "error-report-secret-key-" + "Hq7rX2pL" * 5
MONGO_USER = "svc-binancews"
MONGO_PASSWORD = "m0ngo-p@ss:w/rd"  # characters a URI must %-encode
REDIS_PASSWORD = "r3dis-p@ss#w0rd"
WS_PASSWORD = "ws-pr0xy-p@ss"
REST_PASSWORD = "rest-m1rror-p@ss"
PASSWORDS = (SECRET_KEY, MONGO_PASSWORD, REDIS_PASSWORD, WS_PASSWORD, REST_PASSWORD)

# Runs inside `manage.py shell -c`: prints what the error reports show, then uses the credentials.
PROBE = """
import json, logging, pprint, sys
from urllib.parse import unquote, urlsplit
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test import RequestFactory
from django.utils.log import AdminEmailHandler
from django.views.debug import SafeExceptionReporterFilter, technical_500_response
from binancews.error_reports import RedactingExceptionReporterFilter

settings.ADMINS = [("ops", "ops@example.com")]
settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
request = RequestFactory().get("/admin/")

def fail():
    database = settings.DATABASES["default"]  # locals a real failure holds (the backend's own frames do)
    layers = settings.CHANNEL_LAYERS
    config = settings.BINANCEWS
    rest_url = config.binance_rest_url
    rest_auth = (urlsplit(rest_url).username, unquote(urlsplit(rest_url).password))  # as an HTTP client holds it
    raise RuntimeError("the database is away")

try:
    fail()
except RuntimeError:
    exc_info = sys.exc_info()
shown = {
    "stock settings": pprint.pformat(SafeExceptionReporterFilter().get_safe_settings()),
    "project settings": pprint.pformat(RedactingExceptionReporterFilter().get_safe_settings()),
    "500 page": technical_500_response(request, *exc_info).content.decode(),
}
record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Internal Server Error", (), exc_info)
record.request = request
AdminEmailHandler(include_html=True).emit(record)
shown["e-mail text"] = mail.outbox[0].body
shown["e-mail html"] = mail.outbox[0].alternatives[0][0]

layer = get_channel_layer()
if settings.BINANCEWS.redis_url:
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("probe", channel)
    async_to_sync(layer.group_send)("probe", {"type": "probe.message", "text": "through redis"})
    received = async_to_sync(layer.receive)(channel)["text"]
else:
    received = None
connection.ensure_connection()
credentials = connection.connection.options.pool_options._credentials
collections = connection.connection[settings.DATABASES["default"]["NAME"]].list_collection_names()
print(json.dumps({
    "shown": shown,
    "layer received": received,
    "mongo user": credentials.username if credentials else None,
    "mongo password matches": bool(credentials) and credentials.password == %(mongo_password)r,
    "collections listed": isinstance(collections, list),
}))
"""


def encodings(secret: str) -> set[str]:
    """``secret`` as written, %-encoded as in a URI (both ways), and HTML-escaped as on a page."""
    return {secret, quote(secret, safe=""), quote(secret), html.escape(secret), html.escape(secret, quote=False)}


def probe(env: dict[str, str]) -> dict:
    script = PROBE % {"mongo_password": MONGO_PASSWORD}
    process = manage(["shell", "-c", script], env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def mongo_with_login(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecantusServer]:
    """A SecantusDB that refuses every command but a handshake until a client logs in as MONGO_USER."""
    server = SecantusServer(tmp_path_factory.mktemp("secantus-auth") / "data").start()
    try:
        import pymongo

        client = pymongo.MongoClient(server.uri)
        client.admin.command("createUser", MONGO_USER, pwd=MONGO_PASSWORD, roles=["root"])
        client.close()
    finally:
        server.stop()
    server.auth = True
    yield server.start()
    server.stop()


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis.log", password=REDIS_PASSWORD).start()
    yield server
    server.stop()


def credential_env(mongo: SecantusServer, redis: RedisServer, *, debug: bool) -> dict[str, str]:
    """Every setting that can carry a credential carries one, %-encoded where a URI needs it."""
    mongo_uri = join_credentials(mongo.uri, MONGO_USER, MONGO_PASSWORD)
    database = f"secrets_{uuid.uuid4().hex[:8]}"
    return service_env(
        mongo_uri,
        database,
        DJANGO_DEBUG=str(debug).lower(),
        DJANGO_SECRET_KEY=SECRET_KEY,
        DJANGO_ALLOWED_HOSTS="testserver",
        REDIS_URL=redis.url,
        BINANCE_WS_URL=f"ws://proxy:{quote(WS_PASSWORD, safe='')}@127.0.0.1:{free_port()}/market",
        BINANCE_REST_URL=f"http://mirror:{quote(REST_PASSWORD, safe='')}@127.0.0.1:{free_port()}",
        KLINE_SOURCE=TEST_SOURCE,
    )


@pytest.mark.e2e
@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG on", "DEBUG off"])
def test_no_credential_reaches_an_error_report(
    mongo_with_login: SecantusServer, redis_with_password: RedisServer, debug: bool
) -> None:
    assert "%40" in redis_with_password.url  # the URI holds the password %-encoded, as an operator writes it
    result = probe(credential_env(mongo_with_login, redis_with_password, debug=debug))
    for where, text in result["shown"].items():
        assert "DATABASES" in text and "CHANNEL_LAYERS" in text, where
        for secret in PASSWORDS:
            for form in encodings(secret):
                assert form not in text, f"{where} shows {form!r}"
    # What is left is useful: where the database is, who logs in, that a password is set.
    assert f"mongodb://127.0.0.1:{mongo_with_login.port}/" in result["shown"]["stock settings"]
    assert f"'USER': '{MONGO_USER}'" in result["shown"]["stock settings"]
    assert "'PASSWORD': '********************'" in result["shown"]["stock settings"]


@pytest.mark.e2e
def test_the_credentials_still_work(mongo_with_login: SecantusServer, redis_with_password: RedisServer) -> None:
    result = probe(credential_env(mongo_with_login, redis_with_password, debug=False))
    assert result["layer received"] == "through redis"  # a group_send round trip through the password's Redis
    assert result["mongo user"] == MONGO_USER and result["mongo password matches"]
    assert result["collections listed"]  # the server refuses listCollections to a client not logged in


@pytest.mark.e2e
def test_without_the_credentials_both_servers_refuse(
    mongo_with_login: SecantusServer, redis_with_password: RedisServer
) -> None:
    """The round trips above prove the credentials arrive: these servers do refuse a client without them."""
    import pymongo
    import redis

    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(split_credentials(redis_with_password.url)[0]).ping()
    client = pymongo.MongoClient(mongo_with_login.uri, serverSelectionTimeoutMS=5000)
    with pytest.raises(pymongo.errors.OperationFailure, match="requires authentication"):
        client.test.list_collection_names()
    client.close()


@pytest.mark.parametrize(
    ("uri", "host", "user", "password"),
    [
        (
            "mongodb://u:p%40s%3Aw%2Frd@h1:1,h2:2/db?authSource=x",
            "mongodb://h1:1,h2:2/db?authSource=x",
            "u",
            "p@s:w/rd",
        ),
        ("mongodb+srv://u:p@cluster.example.net/", "mongodb+srv://cluster.example.net/", "u", "p"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", None, "pw"),
        ("mongodb://user@h/?authMechanism=MONGODB-X509", "mongodb://h/?authMechanism=MONGODB-X509", "user", None),
        (
            "mongodb://127.0.0.1:27117/?directConnection=true",
            "mongodb://127.0.0.1:27117/?directConnection=true",
            None,
            None,
        ),
    ],
)
def test_credentials_are_split_out_of_a_uri_and_put_back(uri: str, host: str, user: str, password: str) -> None:
    assert split_credentials(uri) == (host, user, password)
    assert join_credentials(host, user, password) == uri


def test_settings_keep_passwords_under_names_django_hides() -> None:
    database = mongo_database("mongodb://u:p%40ss@h/db", "binancews", {"serverSelectionTimeoutMS": 5000})
    assert database == {
        "ENGINE": "django_mongodb_backend",
        "HOST": "mongodb://h/db",
        "NAME": "binancews",
        "OPTIONS": {"serverSelectionTimeoutMS": 5000},
        "USER": "u",
        "PASSWORD": "p@ss",
    }
    assert redis_host("redis://h/0?password=p%40ss&health_check_interval=5") == {
        "address": "redis://h/0?health_check_interval=5",
        "password": "p@ss",
    }
    assert redis_host("redis://:pw@h:6379/0", socket_timeout=30) == {
        "address": "redis://h:6379/0",
        "socket_timeout": 30,
        "password": "pw",
    }
