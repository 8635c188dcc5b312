# Written by hand as makemigrations would (it needs a database to check against).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('klines', '0006_kline_blocks'),
    ]

    operations = [
        migrations.AddField(
            model_name='fundingrate',
            name='from_stream',
            field=models.BooleanField(default=False, help_text='recorded from the mark-price stream, not yet confirmed by REST'),
        ),
    ]
