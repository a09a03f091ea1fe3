"""ASGI entry point.

Gateway paths (`/api/v1/chat/completions`, `/api/v1/models...`) go to a Django handler with no
middleware: Django's stock middleware runs through `sync_to_async` under ASGI, a thread hop per
request the hot path must not pay. Everything else (admin, pages, management API) gets the full stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omixa.settings")

import django

django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.exception import convert_exception_to_response  # noqa: E402

from gateway.lifecycle import GatewayLifespan  # noqa: E402

GATEWAY_PREFIXES = ("/api/v1/chat/", "/api/v1/models", "/api/v1/responses")


class BodyTooLarge(Exception):
    pass


def _declared_length(scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class GatewayASGIHandler(ASGIHandler):
    """Django's ASGI handler without the middleware chain and without the per-request signals.

    `request_started` / `request_finished` exist to run `close_old_connections`, a sync receiver
    Django reaches through `sync_to_async`: two thread hops per request. The gateway's request
    path holds no database connection (code that reads the database runs in worker threads and
    closes stale connections itself), so the hops buy nothing here. Disconnect handling is
    Django's own: the view task is cancelled when the client goes away.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)

    def create_request(self, scope, body_file):
        request, error_response = super().create_request(scope, body_file)
        if request is not None:
            request.urlconf = "gateway.asgi_urls"
        return request, error_response

    async def read_body(self, receive):
        """Django's, with the gateway's size limit applied while reading, not after: a huge or
        endless upload is refused at the limit instead of being spooled to disk first."""
        limit = settings.OMIXA_MAX_REQUEST_BYTES
        body_file = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                body_file.close()
                raise BodyTooLarge()
            body_file.write(chunk)
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file

    async def handle(self, scope, receive, send) -> None:
        try:
            if _declared_length(scope) > settings.OMIXA_MAX_REQUEST_BYTES:
                raise BodyTooLarge()
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        except BodyTooLarge:
            from gateway import metrics
            from gateway.views import new_request_id, too_large

            await self.send_response(too_large().response(new_request_id()), send)
            metrics.refused_before_view(scope["path"], 413)
            return
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            return

        async def process_request() -> None:
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client disconnected while we were sending
            finally:
                # A stream the client left before its body was first read still gets its usage record.
                abandon = getattr(response, "omixa_abandon", None)
                if abandon is not None:
                    await abandon()

        listener = asyncio.create_task(self.listen_for_disconnect(receive))
        worker = asyncio.create_task(process_request())
        try:
            await asyncio.wait((listener, worker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (listener, worker):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            body_file.close()
        if not listener.cancelled():
            listener.exception()  # RequestAborted: the client left; retrieved so asyncio stays quiet
        if not worker.cancelled() and worker.exception() is not None:
            raise worker.exception()


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
