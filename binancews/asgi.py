"""ASGI entry point: HTTP (admin, static files) and the websocket feed on ``/``."""

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
