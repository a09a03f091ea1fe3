from django.apps import AppConfig


class ModeldocsConfig(AppConfig):
    name = "modeldocs"
