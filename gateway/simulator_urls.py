"""Mounted by omixa/urls.py at `simulator/` (offline `make run` provider)."""

from django.urls import path

from gateway import simulator_views

urlpatterns = [
    path("openai/v1/chat/completions", simulator_views.azure_chat_completions),
    path(
        "openai/deployments/<str:deployment>/chat/completions",
        simulator_views.azure_deployment_chat_completions,
    ),
    path("v1/chat/completions", simulator_views.openai_chat_completions),
]
