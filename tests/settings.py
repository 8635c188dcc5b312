"""Settings of the test process: the project's, with development defaults and without the developer's ``.env``.

Set before ``binancews.settings`` reads the environment (pytest-django imports this
module before any conftest runs); the service's subprocesses inherit both, and
:func:`klines.testing.servers.service_env` sets them again.
"""

import os

os.environ["BINANCEWS_ENV_FILE"] = ""  # a local .env must not change what the tests see
os.environ["DJANGO_DEBUG"] = "true"

from binancews.settings import *  # noqa: E402, F403
