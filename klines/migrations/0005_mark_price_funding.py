# Written by hand as makemigrations would (it needs a database to check against).

import django_mongodb_backend.fields
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('klines', '0004_exchange_gap'),
    ]

    operations = [
        migrations.CreateModel(
            name='MarkPriceKline',
            fields=[
                ('id', django_mongodb_backend.fields.ObjectIdAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('symbol', models.CharField(max_length=30)),
                ('interval', models.CharField(max_length=4)),
                ('open_time', models.DateTimeField()),
                ('close_time', models.DateTimeField()),
                ('open', models.DecimalField(decimal_places=12, max_digits=30)),
                ('high', models.DecimalField(decimal_places=12, max_digits=30)),
                ('low', models.DecimalField(decimal_places=12, max_digits=30)),
                ('close', models.DecimalField(decimal_places=12, max_digits=30)),
                ('samples', models.BigIntegerField(help_text="Binance's number of price samples")),
                ('stored_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'db_table': 'mark_price_klines',
                'ordering': ['-open_time'],
                'indexes': [models.Index(fields=['symbol', 'interval', 'open_time'], name='mark_price_kline_range')],
                'constraints': [models.UniqueConstraint(fields=('symbol', 'interval', 'open_time'), name='unique_mark_price_kline')],
            },
        ),
        migrations.CreateModel(
            name='FundingRate',
            fields=[
                ('id', django_mongodb_backend.fields.ObjectIdAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('symbol', models.CharField(max_length=30)),
                ('funding_time', models.DateTimeField()),
                ('funding_rate', models.DecimalField(decimal_places=12, max_digits=30)),
                ('mark_price', models.DecimalField(decimal_places=12, max_digits=30)),
                ('stored_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'db_table': 'funding_rates',
                'ordering': ['-funding_time'],
                'indexes': [models.Index(fields=['symbol', 'funding_time'], name='funding_rate_range')],
                'constraints': [models.UniqueConstraint(fields=('symbol', 'funding_time'), name='unique_funding_rate')],
            },
        ),
    ]
