from django.apps import AppConfig


class KlinesConfig(AppConfig):
    name = "klines"
    verbose_name = "Klines"
    default_auto_field = "django_mongodb_backend.fields.ObjectIdAutoField"
