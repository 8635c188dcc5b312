"""Read-only admin for stored klines: market data is never edited by hand."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin

from klines.adminlist import IntervalFilter, KlineChangeList, SymbolFilter
from klines.models import Kline


def plain(value: Decimal) -> str:
    """A decimal as Binance wrote it, without the field's padding zeros (96254.1, not 96254.100000000000)."""
    return format(value.normalize(), "f")


def _decimal_column(name: str, label: str):
    @admin.display(description=label, ordering=name)
    def column(model_admin: admin.ModelAdmin, obj: Kline) -> str:
        return plain(getattr(obj, name))

    column.__name__ = f"{name}_plain"
    return column


@admin.register(Kline)
class KlineAdmin(admin.ModelAdmin):
    open_plain = _decimal_column("open", "Open")
    high_plain = _decimal_column("high", "High")
    low_plain = _decimal_column("low", "Low")
    close_plain = _decimal_column("close", "Close")
    volume_plain = _decimal_column("volume", "Base volume")

    list_display = [
        "symbol",
        "interval",
        "open_time",
        "open_plain",
        "high_plain",
        "low_plain",
        "close_plain",
        "volume_plain",
        "trades",
    ]
    list_filter = [SymbolFilter, IntervalFilter]
    search_fields = ["symbol"]
    date_hierarchy = "open_time"
    ordering = ["-open_time"]
    sortable_by = ()  # pages follow the index order (klines.adminlist): newest open time first
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    readonly_fields = [field.name for field in Kline._meta.fields]

    def get_changelist(self, request, **kwargs):
        return KlineChangeList

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
