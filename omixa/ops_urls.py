"""Operational endpoints: /healthz, /readyz, /metrics (omixa/health.py)."""

from django.urls import path

from omixa import health

urlpatterns: list = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
]
