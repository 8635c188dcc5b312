"""Check at start that MongoDB answers, and say in one line which URI (password hidden) does not and why.

pymongo only reports an unreachable server when a query first needs it, after its
server selection timeout, inside a long traceback. :func:`database_problem` pings
with a short timeout instead; :func:`check_before_command` runs it before a
``manage.py`` command that needs the database.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

import pymongo
from pymongo.errors import OperationFailure, PyMongoError

from binancews.credentials import join_credentials
from binancews.redact import redact_uris

TIMEOUT_SECONDS = 3.0
# Commands that cannot do anything without the database: stop them at once, in one line.
NEEDS_DATABASE = frozenset(
    {
        "migrate",
        "createsuperuser",
        "changepassword",
        "klines_status",
        "showmigrations",
        "flush",
        "loaddata",
        "dumpdata",
        "clearsessions",
        "remove_stale_contenttypes",
    }
)
# Commands that keep working while the database is away (the ingest queues): warn in one line.
WARN_ONLY = frozenset({"ingest_klines"})
_PYMONGO_NOISE = re.compile(r" \(configured timeouts:[^)]*\)|, Timeout: .*", re.DOTALL)


def _reason(exc: PyMongoError) -> str:
    if isinstance(exc, OperationFailure):
        return str(exc.details.get("errmsg", exc) if exc.details else exc)
    # "host:port: [Errno 111] Connection refused (configured timeouts: ...), Timeout: 3.0s, Topology Description: ..."
    return _PYMONGO_NOISE.sub("", str(exc)).strip()


def database_problem(
    uri: str, options: Mapping[str, Any] | None = None, *, timeout: float = TIMEOUT_SECONDS
) -> str | None:
    """One line saying why MongoDB at ``uri`` cannot be used, or ``None`` when it answers a ping."""
    milliseconds = int(timeout * 1000)
    client = None
    try:
        client = pymongo.MongoClient(
            uri, **{**(options or {}), "serverSelectionTimeoutMS": milliseconds, "connectTimeoutMS": milliseconds}
        )
        client.admin.command("ping")
    except PyMongoError as exc:
        verb = "cannot log in to" if isinstance(exc, OperationFailure) else "cannot reach"
        return f"binancews: {verb} MongoDB at {redact_uris(uri)} ({redact_uris(_reason(exc))}); check MONGO_URI"
    finally:
        if client is not None:
            client.close()
    return None


def settings_database_problem() -> str | None:
    """:func:`database_problem` for Django's default database."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    uri = join_credentials(database["HOST"], database.get("USER"), database.get("PASSWORD"))
    return database_problem(uri, database.get("OPTIONS"))


def check_before_command(argv: list[str]) -> None:
    """Before ``manage.py <command>``: stop (exit 1) or warn, in one line, if the command's database is away."""
    command = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
    if command not in NEEDS_DATABASE | WARN_ONLY:
        return
    problem = settings_database_problem()
    if problem is None:
        return
    if command in WARN_ONLY:
        sys.stderr.write(f"{problem}; the ingest reads the exchange once it answers\n")
        return
    sys.stderr.write(problem + "\n")
    raise SystemExit(1)
