from django.urls import path, re_path

from klines.consumers import KlineFeedConsumer, UnknownPathConsumer

websocket_urlpatterns = [
    path("", KlineFeedConsumer.as_asgi()),
    re_path(r"", UnknownPathConsumer.as_asgi()),
]
