"""ASGI entry point: HTTP (dashboard, admin, static files, /healthz) and the websocket feed on ``/``."""

import gc
import logging
import os
import threading

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "binancews.settings")
django_asgi_app = get_asgi_application()  # sets Django up before anything touches models

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from binancews import daphne_close, daphne_inbox, daphne_prepared, daphne_reaping, daphne_tuning  # noqa: E402
from binancews.database_check import settings_database_problem  # noqa: E402
from klines.serving.routing import websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": websocket_application(settings.BINANCEWS.ws_allowed_origins),
    }
)


def _report_database() -> None:
    """One line at start when the database does not answer; serving goes on (the feed retries)."""
    problem = settings_database_problem()
    if problem is not None:
        logging.getLogger("binancews.asgi").error("%s; serving goes on and retries", problem)


threading.Thread(target=_report_database, name="database check", daemon=True).start()
daphne_tuning.install()  # under daphne: no debug-message formatting per connection while debug logging is off
daphne_close.install()  # under daphne: close codes 1008/1009/1013 and reasons reach the client
daphne_inbox.install()  # under daphne: a ~0.2 KB inbox per connection, not a ~3.2 KB asyncio.Queue (before reaping)
daphne_reaping.install()  # under daphne: a closed connection is freed at once, by reference counting
daphne_prepared.apply()  # under daphne: a frame sent to many clients is framed once, written to each at once

# Everything loaded so far (Django, the apps, twisted or asyncio machinery) lives as
# long as the process. Freezing it keeps the cyclic garbage collector from re-scanning
# it in every full collection: those pauses were 50-80 ms in a connect storm and made
# the connect p99 (see bench/README.md).
gc.freeze()
# A closed connection is now freed by reference counting (daphne_reaping), so young collections find
# almost nothing: at CPython's default of 700 allocations they ran ~130 times per 1,000 connections for
# ~50 us of daphne's CPU per connection; at 7,000, a few times (~7 us), with no full collection.
gc.set_threshold(7000, *gc.get_threshold()[1:])  # allocations between young collections
