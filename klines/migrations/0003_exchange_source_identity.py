"""The record's exchange becomes an identity (``source``) held in one row with a fixed unique key (``record``).

An existing claim keeps its URL; one of Binance USD-M's hosts becomes ``binance-usdm``.
Any other stays without a source until the next ingest at that same address names it.
Of two claims (two ingests that raced on an empty database, which then refused every
start), the first is kept.
"""

from django.db import migrations, models

from klines.binance.source import BINANCE_USDM, is_binance_usdm_rest


def one_claim_with_its_source(apps, schema_editor):
    ExchangeSource = apps.get_model("klines", "ExchangeSource")
    claims = list(ExchangeSource.objects.order_by("claimed_at", "id"))
    for extra in claims[1:]:
        extra.delete()
    if claims and not claims[0].source and is_binance_usdm_rest(claims[0].rest_url):
        claims[0].source = BINANCE_USDM
        claims[0].save(update_fields=["source"])


class Migration(migrations.Migration):
    dependencies = [
        ("klines", "0002_exchange_source"),
    ]

    operations = [
        migrations.AddField(
            model_name="exchangesource",
            name="source",
            field=models.CharField(
                blank=True, help_text="Empty: claimed by a version that kept only the URL", max_length=200
            ),
        ),
        migrations.AddField(
            model_name="exchangesource",
            name="record",
            field=models.PositiveSmallIntegerField(default=1, editable=False),
        ),
        migrations.AlterField(
            model_name="exchangesource",
            name="rest_url",
            field=models.CharField(
                blank=True, help_text="The last ingest's", max_length=200, verbose_name="REST base URL"
            ),
        ),
        migrations.RunPython(one_claim_with_its_source, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="exchangesource",
            name="record",
            field=models.PositiveSmallIntegerField(default=1, editable=False, unique=True),
        ),
    ]
