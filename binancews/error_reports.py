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

from binancews.redact import HIDDEN, redact_uris


def _hide(text: str) -> str:
    text = redact_uris(text)
    secret = getattr(settings, "SECRET_KEY", "")
    return text.replace(secret, HIDDEN) if len(secret) >= 8 else text


def _hidden(value: Any) -> Any:
    """``value`` itself, or (when it showed a secret) its text with the secret hidden."""
    if isinstance(value, str):
        return _hide(value)
    try:
        text = repr(value)
    except Exception:  # Django shows a broken __repr__ as such
        return value
    hidden = _hide(text)
    return value if hidden == text else hidden


class RedactingExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's safe filter, plus URI passwords and the secret key in any value."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)  # recurses into dicts, lists and tuples
        return cleansed if isinstance(cleansed, dict | list | tuple) else _hidden(cleansed)

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> list[tuple[str, Any]]:
        return [(name, _hidden(value)) for name, value in super().get_traceback_frame_variables(request, tb_frame)]
