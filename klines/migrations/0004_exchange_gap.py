# Written by hand as makemigrations would (it needs a database to check against).

import django_mongodb_backend.fields
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('klines', '0003_exchange_source_identity'),
    ]

    operations = [
        migrations.CreateModel(
            name='ExchangeGap',
            fields=[
                ('id', django_mongodb_backend.fields.ObjectIdAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('symbol', models.CharField(max_length=30)),
                ('interval', models.CharField(max_length=4)),
                ('first_open', models.DateTimeField(help_text='Open time of the first kline the exchange does not have')),
                ('last_open', models.DateTimeField(help_text='Open time of the last kline the exchange does not have')),
                ('found_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'db_table': 'exchange_gaps',
                'indexes': [models.Index(fields=['symbol', 'interval', 'first_open'], name='exchange_gap_range')],
                'constraints': [models.UniqueConstraint(fields=('symbol', 'interval', 'first_open'), name='unique_exchange_gap')],
            },
        ),
    ]
