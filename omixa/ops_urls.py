"""Operational endpoints: /healthz, /readyz, /metrics."""

urlpatterns: list = []
