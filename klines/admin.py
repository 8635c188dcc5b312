"""Read-only admin for stored klines: market data is never edited by hand."""

from django.contrib import admin

from klines.models import Kline


@admin.register(Kline)
class KlineAdmin(admin.ModelAdmin):
    list_display = ["symbol", "interval", "open_time", "open", "high", "low", "close", "volume", "trades"]
    list_filter = ["symbol", "interval"]
    search_fields = ["symbol"]
    date_hierarchy = "open_time"
    ordering = ["-open_time"]
    list_per_page = 100
    readonly_fields = [field.name for field in Kline._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
