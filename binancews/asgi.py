"""ASGI entry point: HTTP (admin, static files) and the websocket feed on ``/``."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "binancews.settings")
django_asgi_app = get_asgi_application()  # sets Django up before anything touches models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from klines.routing import websocket_urlpatterns  # noqa: E402

websocket_app = URLRouter(websocket_urlpatterns)
if settings.WS_ALLOWED_ORIGINS:
    # Public market data is open to any origin unless WS_ALLOWED_ORIGINS says otherwise.
    websocket_app = OriginValidator(websocket_app, list(settings.WS_ALLOWED_ORIGINS))

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": websocket_app,
    }
)

# Everything loaded so far (Django, the apps, twisted or asyncio machinery) lives as
# long as the process. Freezing it keeps the cyclic garbage collector from re-scanning
# it in every full collection: those pauses were 50-80 ms in a connect storm and made
# the connect p99 (see bench/README.md).
gc.freeze()
