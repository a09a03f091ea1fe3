"""The floor: a bare Django async pass-through (stock handler), what the issue's targets are relative to.

A minimal Django project in this module (settings in code, no database, no apps, no middleware, and
so none of the database's per-request signal receivers) with one async view at
``/v1/chat/completions`` (also ``/api/v1/chat/completions``) that forwards the request body to the mock
upstream and passes the answer back: buffered for JSON, as a ``StreamingHttpResponse`` for
``text/event-stream``. Served by uvicorn, 1 worker, uvloop, httptools.

Two upstream clients (``--client``):
- ``aiohttp`` (default): one shared ``aiohttp.ClientSession`` (the issue's floor);
- ``httpx``: one shared, default ``httpx.AsyncClient()`` (its own connection pool), for comparison.

``--handler lean`` serves the same view without the stock handler's per-request thread hops (see
``LeanASGIHandler``): not the floor, a reference for how much of the floor is Django's handler.

Run: ``python -m bench.floor --port 9200 --upstream http://127.0.0.1:9100 [--client httpx] [--handler lean]``.
"""

from __future__ import annotations

import argparse
import os

import django
from django.conf import settings

UPSTREAM = os.environ.get("BENCH_FLOOR_UPSTREAM", "http://127.0.0.1:9100").rstrip("/")
CLIENT = os.environ.get("BENCH_FLOOR_CLIENT", "aiohttp")

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-floor-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
        USE_TZ=True,
        DATA_UPLOAD_MAX_MEMORY_SIZE=None,
        LOGGING_CONFIG=None,
    )
    django.setup(set_prefix=False)
    # No database here, so none of its per-request plumbing either: Django connects these receivers
    # on import of django.db even with DATABASES = {}, and under ASGI each sync receiver costs a
    # thread hop per request (measured: ~0.2 ms at c=1 on this machine). Dropping them makes the
    # floor the stricter (faster) baseline; a gateway whose hot path touches no ORM can do the same.
    from django.core import signals
    from django.db import close_old_connections, reset_queries

    signals.request_started.disconnect(reset_queries)
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)

from django.http import HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

_client = None


def _aiohttp_session():
    global _client
    if _client is None:
        import aiohttp

        _client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
    return _client


def _httpx_client():
    global _client
    if _client is None:
        import httpx

        _client = httpx.AsyncClient()
    return _client


async def _via_aiohttp(body: bytes, target: str):
    session = _aiohttp_session()
    response = await session.post(target, data=body, headers={"Content-Type": "application/json"})
    content_type = response.headers.get("Content-Type", "application/json")
    if not content_type.startswith("text/event-stream"):
        try:
            return HttpResponse(await response.read(), status=response.status, content_type=content_type)
        finally:
            response.release()

    async def events():
        try:
            async for chunk in response.content.iter_any():
                yield chunk
        finally:
            response.release()

    return StreamingHttpResponse(events(), status=response.status, content_type=content_type)


async def _via_httpx(body: bytes, target: str):
    client = _httpx_client()
    request = client.build_request("POST", target, content=body, headers={"Content-Type": "application/json"})
    response = await client.send(request, stream=True)
    content_type = response.headers.get("Content-Type", "application/json")
    if not content_type.startswith("text/event-stream"):
        try:
            return HttpResponse(await response.aread(), status=response.status_code, content_type=content_type)
        finally:
            await response.aclose()

    async def events():
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()

    return StreamingHttpResponse(events(), status=response.status_code, content_type=content_type)


@csrf_exempt
async def chat_completions(request):
    target = UPSTREAM + "/v1/chat/completions"
    if CLIENT == "httpx":
        return await _via_httpx(request.body, target)
    return await _via_aiohttp(request.body, target)


urlpatterns = [
    path("v1/chat/completions", chat_completions),
    path("api/v1/chat/completions", chat_completions),
]

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402

application = get_asgi_application()


class LeanASGIHandler(ASGIHandler):
    """Django's request, URL resolution and response, without the handler's per-request thread hops.

    Stock ``ASGIHandler`` opens a ``ThreadSensitiveContext`` (a fresh executor thread per request on
    the first ``sync_to_async``), sends ``request_finished`` through ``sync_to_async(response.close)``
    and runs a disconnect-listener task. This variant does none of it: a reference for how far a
    Django gateway can get below the floor, not a floor (the ``floor-lean`` target).
    """

    async def __call__(self, scope, receive, send) -> None:
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            request, error_response = self.create_request(scope, body_file)
            response = error_response if request is None else await self.run_get_response(request)
            await self.send_response(response, send)
        finally:
            body_file.close()


lean_application = LeanASGIHandler()


def main(argv: list[str] | None = None) -> None:
    global UPSTREAM, CLIENT
    parser = argparse.ArgumentParser(description="Bare Django async pass-through (the floor).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--upstream", default=UPSTREAM)
    parser.add_argument("--client", choices=("aiohttp", "httpx"), default=CLIENT)
    parser.add_argument("--handler", choices=("stock", "lean"), default="stock", help="Django's ASGIHandler or lean")
    args = parser.parse_args(argv)
    UPSTREAM, CLIENT = args.upstream.rstrip("/"), args.client
    import uvicorn

    uvicorn.run(
        lean_application if args.handler == "lean" else application,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
