"""ASGI entry point.

Gateway paths (`/api/v1/chat/completions`, `/api/v1/models...`) go to a Django handler with no
middleware: Django's stock middleware runs through `sync_to_async` under ASGI, a thread hop per
request the hot path must not pay. Everything else (admin, pages, management API) gets the full stack.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omixa.settings")

import django

django.setup(set_prefix=False)

from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.exception import convert_exception_to_response  # noqa: E402

from gateway.lifecycle import GatewayLifespan  # noqa: E402

GATEWAY_PREFIXES = ("/api/v1/chat/", "/api/v1/models", "/api/v1/responses")


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler without the middleware chain (the gateway views need none)."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)


class OmixaASGI:
    def __init__(self) -> None:
        self.site = ASGIHandler()
        self.gateway = GatewayASGIHandler()
        self.lifespan = GatewayLifespan()

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http" and scope["path"].startswith(GATEWAY_PREFIXES):
            await self.gateway(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(scope, receive, send)
        else:
            await self.site(scope, receive, send)


application = OmixaASGI()
