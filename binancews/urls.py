from django.contrib import admin
from django.urls import include, path, re_path

from klines.api.archive import archive_file
from klines.serving.chart import chart
from klines.serving.health import healthz
from klines.serving.metrics import metrics
from klines.serving.views import dashboard

urlpatterns = [
    path("", dashboard, name="dashboard"),
    path("chart/<str:symbol>", chart, name="chart"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("fapi/", include("klines.api.urls")),  # the Binance-compatible mirror
    re_path(r"^(?P<path>data/futures/um/.*)$", archive_file, name="archive-file"),  # and its public archive
]
