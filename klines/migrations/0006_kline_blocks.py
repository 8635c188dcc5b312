# Written by hand as makemigrations would (it needs a database to check against).

import django_mongodb_backend.fields
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('klines', '0005_mark_price_funding'),
    ]

    operations = [
        migrations.CreateModel(
            name='KlineBlock',
            fields=[
                ('id', django_mongodb_backend.fields.ObjectIdAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('symbol', models.CharField(max_length=30)),
                ('interval', models.CharField(max_length=4)),
                ('block_start', models.DateTimeField(help_text="Open time of the block's first kline")),
                ('rows', models.BinaryField(help_text='The rows\' JSON, joined by commas')),
                ('ends', models.BinaryField(help_text='Where each row ends in rows: unsigned 32-bit little-endian offsets')),
            ],
            options={
                'db_table': 'kline_blocks',
                'indexes': [models.Index(fields=['symbol', 'interval', 'block_start'], name='kline_block_range')],
                'constraints': [models.UniqueConstraint(fields=('symbol', 'interval', 'block_start'), name='unique_kline_block')],
            },
        ),
    ]
