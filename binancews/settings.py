"""Django settings for binancews. Every value comes from binancews.config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dotenv import dotenv_values

from binancews.config import ConfigError, load_config
from binancews.credentials import mongo_database, redis_host

BASE_DIR = Path(__file__).resolve().parent.parent

# BINANCEWS_ENV_FILE names the .env file to read (default: the project's); empty reads
# none. The tests set it empty so that a developer's .env cannot change what they see.
_env_file = os.environ.get("BINANCEWS_ENV_FILE", str(BASE_DIR / ".env"))
_env = {**(dotenv_values(_env_file) if _env_file else {}), **os.environ}
try:
    _config = load_config({k: v for k, v in _env.items() if v is not None})
except ConfigError as exc:
    # One clear line, no traceback: the message names the variable to set.
    sys.stderr.write(f"binancews: configuration error: {exc}\n")
    raise SystemExit(2) from None

SECRET_KEY = _config.secret_key
DEBUG = _config.debug
ALLOWED_HOSTS = list(_config.allowed_hosts)
CSRF_TRUSTED_ORIGINS = list(_config.csrf_trusted_origins)
if _config.proxy_ssl_header:
    # Trust the proxy's "this request came over https" header (daphne --proxy-headers needs none).
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _config.proxy_ssl_header.upper().replace("-", "_"), "https")
if _config.https:
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # platforms probe health over plain http from inside
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 365 * 24 * 3600  # SecurityMiddleware sends it on https responses only
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# HSTS preload is the domain owner's decision (and a submission to the browsers' list), not a default.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
# No setting holds a password where Django's own filter would show it (see binancews/credentials.py);
# this filter also hides URI passwords in request.META and the traceback's local variables.
DEFAULT_EXCEPTION_REPORTER_FILTER = "binancews.error_reports.RedactingExceptionReporterFilter"

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

# Credentials travel in USER / PASSWORD, not in HOST: Django's error reports hide those by name.
DATABASES = {
    # Fail fast instead of pymongo's 30 s default when the server is down.
    "default": mongo_database(_config.mongo_uri, _config.mongo_database, {"serverSelectionTimeoutMS": 5000}),
}
DEFAULT_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"
MIGRATION_MODULES = {
    "admin": "mongo_migrations.admin",
    "auth": "mongo_migrations.auth",
    "contenttypes": "mongo_migrations.contenttypes",
}

if _config.redis_url:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # One message per serving process per close; room for a burst of
            # thousands of symbols before a slow process drops (it then
            # catches up from the database).
            # redis-py >= 8 times reads out after 5 s, as long as channels_redis's
            # blocking pop waits: give the socket more room than that.
            "CONFIG": {
                # The password travels as "password" (hidden by name in error reports), not in the address.
                "hosts": [redis_host(_config.redis_url, socket_timeout=30)],
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

# The service's own settings travel as one typed object; components take their
# slice (BINANCEWS.ingest, BINANCEWS.serving). Its repr leaves out secrets.
BINANCEWS = _config

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # Server errors (django.request) with their traceback, and 4xx warnings, on stderr.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "binancews": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "klines": {
            "handlers": ["console"],
            "level": os.environ.get("KLINES_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
    },
}
