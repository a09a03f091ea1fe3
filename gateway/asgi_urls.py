"""The URLs the gateway's lean handler resolves (omixa/asgi.py): just the gateway, so that
resolving a request does not walk the admin's and the pages' patterns first."""

from django.urls import include, path

urlpatterns = [path("api/v1/", include("gateway.urls"))]
