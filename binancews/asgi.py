"""ASGI entry point: HTTP (dashboard, admin, static files, /healthz) and the websocket feed on ``/``.

``daphne binancews.asgi:application`` imports this module; what the serving
process does besides building the application is the three calls at the end:
the daphne patches, the database check at start, the garbage collector's tuning.
"""

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

from binancews import daphne_patches  # noqa: E402
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


def start_database_check() -> None:
    """Check the database on a thread of its own, so a database that hangs does not hold up serving."""
    threading.Thread(target=_report_database, name="database check", daemon=True).start()


def tune_garbage_collector() -> None:
    """Freeze what start-up loaded and collect young objects ten times less often (the measured reasons below)."""
    # Everything loaded so far (Django, the apps, twisted or asyncio machinery) lives as
    # long as the process. Freezing it keeps the cyclic garbage collector from re-scanning
    # it in every full collection: those pauses were 50-80 ms in a connect storm and made
    # the connect p99 (see bench/README.md).
    gc.freeze()
    # A closed connection is now freed by reference counting (daphne_patches.reaping), so young collections
    # find almost nothing: at CPython's default of 700 allocations they ran ~130 times per 1,000 connections
    # for ~50 us of daphne's CPU per connection; at 7,000, a few times (~7 us), with no full collection.
    gc.set_threshold(7000, *gc.get_threshold()[1:])  # allocations between young collections


daphne_patches.apply()  # each patch only on the daphne/autobahn/twisted versions it was written for
start_database_check()
tune_garbage_collector()  # last: freezes what the lines above loaded
