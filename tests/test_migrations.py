"""Migrations are reproducible: what ``migrate`` builds does not depend on the environment it runs in."""

from __future__ import annotations

import importlib
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db.migrations.operations import CreateModel
from django.test import override_settings

from klines.models import KLINES_COLLECTION, Kline


def created_tables(module_name: str) -> dict[str, str]:
    """Model name -> ``db_table`` of each model the migration creates, read from a fresh import of it."""
    module = importlib.reload(importlib.import_module(module_name))
    return {
        op.name: op.options.get("db_table", "") for op in module.Migration.operations if isinstance(op, CreateModel)
    }


def test_the_klines_migration_names_its_collection_whatever_the_settings_say() -> None:
    elsewhere = SimpleNamespace(mongo_collection="elsewhere")  # what a settings-driven migration would read
    with override_settings(BINANCEWS=elsewhere):
        tables = created_tables("klines.migrations.0001_initial")
    assert tables == {"Kline": "klines"}
    assert Kline._meta.db_table == KLINES_COLLECTION == "klines"  # the model writes where migrate built the indexes


@pytest.mark.django_db
def test_the_models_and_their_migrations_agree() -> None:
    out = StringIO()
    call_command("makemigrations", "klines", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
