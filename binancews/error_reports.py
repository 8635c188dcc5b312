"""Django's error reports (the DEBUG 500 page, error e-mails) without secrets.

Django's :class:`SafeExceptionReporterFilter` hides settings and request headers
whose *names* look secret (``SECRET_KEY``, ``*PASSWORD*``, ...); the settings keep
every password under such a name (:mod:`binancews.credentials`). Connection URIs
still carry their password elsewhere, in values with innocent names: ``MONGO_URI``
in ``request.META`` under a WSGI server, and the traceback's local variables. This
filter also hides those, and the secret key wherever a local variable holds it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils.functional import LazyObject, empty
from django.views.debug import SafeExceptionReporterFilter

from binancews.redact import HIDDEN, redact_uris, uri_passwords

SHORTEST_HIDDEN = 3  # shorter "secrets" would blank out ordinary text on the page


def _secrets() -> list[str]:
    """The secret key, the database passwords and every password in the connection URIs, longest first."""
    config = getattr(settings, "BINANCEWS", None)
    uris = [str(db.get("HOST", "")) for db in settings.DATABASES.values()]
    if config is not None:
        uris += [config.mongo_uri, config.redis_url, config.binance_ws_url, config.binance_rest_url]
    passwords = {str(db.get("PASSWORD") or "") for db in settings.DATABASES.values()}
    secrets = {settings.SECRET_KEY, *passwords, *uri_passwords(*uris)}
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


def _unevaluated_lazy(value: Any) -> bool:
    """A lazy object (``request.user``) not yet set up; ``isinstance`` would set it up, ``type`` does not."""
    return issubclass(type(value), LazyObject) and value._wrapped is empty


def _hidden(value: Any) -> Any:
    """``value`` with any secret in its text hidden; nothing is queried to show it."""
    if isinstance(value, str):
        return _hide(value)
    if isinstance(value, QuerySet) and value._result_cache is None:
        # Its repr would run the query: against the database that just failed, each waits for
        # server selection (measured: a 500 page took 40-60 s to render).
        return _Shown(f"<{type(value).__name__} of {value.model.__name__}, not evaluated>")
    if _unevaluated_lazy(value):
        return _Shown(f"<{type(value).__name__}, not evaluated>")
    try:
        return _Shown(_hide(repr(value)))
    except Exception:  # Django shows a broken __repr__ as such
        return value


class RedactingExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's safe filter, plus URI passwords and the secret key in any value."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)  # recurses into dicts, lists and tuples
        return cleansed if isinstance(cleansed, dict | list | tuple) else _hidden(cleansed)

    def cleanse_special_types(self, request: Any, value: Any) -> Any:
        if _unevaluated_lazy(value):  # Django's check would set it up: another query of a failing database
            return _Shown(f"<{type(value).__name__}, not evaluated>")
        return super().cleanse_special_types(request, value)

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> list[tuple[str, Any]]:
        return [(name, _hidden(value)) for name, value in super().get_traceback_frame_variables(request, tb_frame)]
