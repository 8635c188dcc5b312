"""Django's error reports (the DEBUG 500 page, error e-mails) without secrets.

Django's :class:`SafeExceptionReporterFilter` hides settings and request headers
whose *names* look secret (``SECRET_KEY``, ``*PASSWORD*``, ...). Connection URIs
carry their password inside a value with an innocent name: ``DATABASES['default']['HOST']``,
``CHANNEL_LAYERS``' Redis address, ``MONGO_URI`` in ``request.META`` under a WSGI
server, and the traceback's local variables. This filter also hides those, and the
secret key wherever a local variable holds it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.views.debug import SafeExceptionReporterFilter

from binancews.redact import HIDDEN, redact_uris, uri_passwords

SHORTEST_HIDDEN = 3  # shorter "secrets" would blank out ordinary text on the page


def _secrets() -> list[str]:
    """The secret key and every password in the connection URIs, longest first."""
    config = getattr(settings, "BINANCEWS", None)
    uris = [str(db.get("HOST", "")) for db in settings.DATABASES.values()]
    if config is not None:
        uris += [config.mongo_uri, config.redis_url]
    secrets = {settings.SECRET_KEY, *uri_passwords(*uris)}
    return sorted((s for s in secrets if len(s) >= SHORTEST_HIDDEN), key=len, reverse=True)


def _hide(text: str) -> str:
    """``text`` without URI passwords, wherever they appear (pymongo's credential objects hold them too)."""
    text = redact_uris(text)
    for secret in _secrets():
        text = text.replace(secret, HIDDEN)
    return text


class _Shown:
    """A value's repr, computed once: the report shows it as is (a repr may query the database)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _hidden(value: Any) -> Any:
    """``value`` with any secret in its text hidden."""
    if isinstance(value, str):
        return _hide(value)
    try:
        return _Shown(_hide(repr(value)))
    except Exception:  # Django shows a broken __repr__ as such
        return value


class RedactingExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's safe filter, plus URI passwords and the secret key in any value."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)  # recurses into dicts, lists and tuples
        return cleansed if isinstance(cleansed, dict | list | tuple) else _hidden(cleansed)

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> list[tuple[str, Any]]:
        return [(name, _hidden(value)) for name, value in super().get_traceback_frame_variables(request, tb_frame)]
