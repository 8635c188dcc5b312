"""Websocket routes: the feed on ``/``, Binance's stream paths, the replay, a refusal everywhere else."""

from __future__ import annotations

from channels.routing import URLRouter
from channels.security.websocket import OriginValidator
from django.urls import path, re_path

from klines.serving.consumers import KlineFeedConsumer, UnknownPathConsumer
from klines.serving.replay_consumer import ReplayConsumer
from klines.serving.stream_consumer import KlineStreamConsumer

websocket_urlpatterns = [
    path("", KlineFeedConsumer.as_asgi()),
    # /market/ws, /market/ws/<streams>, /market/stream?streams=...; and the legacy /ws, /stream
    re_path(r"^(market/)?(ws|stream)(/.*)?$", KlineStreamConsumer.as_asgi()),
    re_path(r"^market/replay/stream/?$", ReplayConsumer.as_asgi()),
    re_path(r"", UnknownPathConsumer.as_asgi()),
]


def websocket_application(allowed_origins: tuple[str, ...] = ()):
    """The websocket ASGI app; with ``allowed_origins``, other origins are refused.

    The feed is public market data read by clients served from other origins, so
    by default any origin may connect.
    """
    router = URLRouter(websocket_urlpatterns)
    return OriginValidator(router, list(allowed_origins)) if allowed_origins else router
