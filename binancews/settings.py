"""Django settings for binancews. Every value comes from binancews.config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dotenv import dotenv_values

from binancews.config import ConfigError, load_config

BASE_DIR = Path(__file__).resolve().parent.parent

_env = {**dotenv_values(BASE_DIR / ".env"), **os.environ}
try:
    CONFIG = load_config({k: v for k, v in _env.items() if v is not None})
except ConfigError as exc:
    # One clear line, no traceback: the message names the variable to set.
    sys.stderr.write(f"binancews: configuration error: {exc}\n")
    raise SystemExit(2) from None

SECRET_KEY = CONFIG.secret_key
DEBUG = CONFIG.debug
ALLOWED_HOSTS = list(CONFIG.allowed_hosts)

INSTALLED_APPS = [
    "daphne",
    "binancews.apps.MongoAdminConfig",
    "binancews.apps.MongoAuthConfig",
    "binancews.apps.MongoContentTypesConfig",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_mongodb_backend",
    "channels",
    "klines",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "binancews.urls"
ASGI_APPLICATION = "binancews.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django_mongodb_backend",
        "HOST": CONFIG.mongo_uri,
        "NAME": CONFIG.mongo_database,
        # Fail fast instead of pymongo's 30 s default when the server is down.
        "OPTIONS": {"serverSelectionTimeoutMS": 5000},
    },
}
DEFAULT_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"
MIGRATION_MODULES = {
    "admin": "mongo_migrations.admin",
    "auth": "mongo_migrations.auth",
    "contenttypes": "mongo_migrations.contenttypes",
}

if CONFIG.redis_url:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # One message per serving process per close; room for a burst of
            # thousands of symbols before a slow process drops (it then
            # catches up from the database).
            # redis-py >= 8 times reads out after 5 s, as long as channels_redis's
            # blocking pop waits: give the socket more room than that.
            "CONFIG": {
                "hosts": [{"address": CONFIG.redis_url, "socket_timeout": 30}],
                "capacity": 10_000,
                "expiry": 60,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Service settings (see README "Configuration").
MONGO_COLLECTION = CONFIG.mongo_collection
BINANCE_WS_URL = CONFIG.binance_ws_url
BINANCE_REST_URL = CONFIG.binance_rest_url
KLINE_SYMBOLS = CONFIG.symbols
KLINE_INTERVAL = CONFIG.interval
KLINE_TIMEZONE = CONFIG.timezone
WS_ALLOWED_ORIGINS = CONFIG.ws_allowed_origins
KLINE_POLL_SECONDS = CONFIG.poll_seconds
WS_MAX_PENDING_BYTES = CONFIG.ws_max_pending_bytes
HEALTH_GRACE_SECONDS = CONFIG.health_grace_seconds
REDIS_URL = CONFIG.redis_url
# Ingest reliability (see docs/reliability.md).
KLINE_STREAMS_PER_CONNECTION = CONFIG.streams_per_connection
KLINE_SILENCE_SECONDS = CONFIG.silence_seconds
KLINE_RECONNECT_MAX_SECONDS = CONFIG.reconnect_max_seconds
KLINE_STATS_SECONDS = CONFIG.stats_seconds
KLINE_QUEUE_SIZE = CONFIG.queue_size
BINANCE_REST_WEIGHT_PER_MINUTE = CONFIG.rest_weight_per_minute

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "klines": {
            "handlers": ["console"],
            "level": os.environ.get("KLINES_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
    },
}
