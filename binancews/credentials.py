"""Split the credentials out of connection URIs, into settings keys that Django's error reports hide. Pure.

Django's :class:`~django.views.debug.SafeExceptionReporterFilter` hides a setting by
its *name* (``PASSWORD``, ``SECRET_KEY``, ...), never a password inside a URI. So the
settings hold each URI without its ``user:password@`` and the password under a key
of its own: the clients (pymongo, redis-py) take both as keyword arguments.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """``uri`` without its userinfo, then the user name and the password (%-decoded; ``None`` when absent)."""
    parts = urlsplit(uri)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at:
        return uri, None, None
    user, colon, password = userinfo.partition(":")
    return parts._replace(netloc=hosts).geturl(), unquote(user) or None, unquote(password) if colon else None


def join_credentials(uri: str, user: str | None, password: str | None) -> str:
    """The inverse of :func:`split_credentials`: ``uri`` with ``user:password@`` (%-encoded) put back.

    Empty strings are no credentials: Django fills in ``USER`` and ``PASSWORD`` as ``""``.
    """
    if not user and not password:
        return uri
    parts = urlsplit(uri)
    userinfo = quote(user or "", safe="") + ("" if password is None else ":" + quote(password, safe=""))
    return parts._replace(netloc=f"{userinfo}@{parts.netloc}").geturl()


def mongo_database(uri: str, name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``DATABASES['default']`` for django-mongodb-backend: the host URI, and the credentials as USER / PASSWORD.

    The backend passes ``USER`` and ``PASSWORD`` to ``MongoClient`` as ``username`` and
    ``password``; the rest of the URI (``authSource``, the database in its path) is unchanged.
    """
    host, user, password = split_credentials(uri)
    database: dict[str, Any] = {"ENGINE": "django_mongodb_backend", "HOST": host, "NAME": name, "OPTIONS": options}
    if user is not None:
        database["USER"] = user
    if password is not None:
        database["PASSWORD"] = password
    return database


def redis_host(url: str, **options: Any) -> dict[str, Any]:
    """A channels_redis host: ``address`` without the password, which travels as ``password`` (and ``username``).

    redis-py also reads ``?password=`` and ``?username=`` in the query string: those move out too.
    """
    address, user, password = split_credentials(url)
    parts = urlsplit(address)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = dict(query)
    user, password = given.get("username", user), given.get("password", password)
    address = parts._replace(query=urlencode([(k, v) for k, v in query if k not in ("username", "password")])).geturl()
    host: dict[str, Any] = {"address": address, **options}
    if user is not None:
        host["username"] = user
    if password is not None:
        host["password"] = password
    return host
