"""The service's settings with the history baseline's URLconf (see :mod:`bench.history_baseline`)."""

from binancews.settings import *  # noqa: F403

ROOT_URLCONF = "bench.history_baseline"
