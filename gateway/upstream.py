"""The shared upstream HTTP client.

httpx is the client API; its transport is aiohttp's (httpx-aiohttp), chosen by measurement: on
this 2-core machine httpx's own pool served 3-4x fewer requests at 16 concurrent clients (see
DESIGN.md and bench/). One client per event loop, reused by every request of the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from gateway.types import ErrorKind, Route, UpstreamError, UpstreamRequest

_clients: dict[int, httpx.AsyncClient] = {}
LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30.0)


def get_client() -> httpx.AsyncClient:
    loop_id = id(asyncio.get_running_loop())
    client = _clients.get(loop_id)
    if client is None or client.is_closed:
        transport = AiohttpTransport(limits=LIMITS, trust_env=False)
        client = httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False)
        _clients[loop_id] = client
    return client


async def close_clients() -> None:
    loop_id = id(asyncio.get_running_loop())
    client = _clients.pop(loop_id, None)
    if client is not None:
        await client.aclose()


def _timeout(route: Route) -> httpx.Timeout:
    # read = first byte (and each later read, which the caller bounds tighter for streams)
    return httpx.Timeout(
        connect=route.connect_timeout,
        read=route.first_byte_timeout,
        write=route.connect_timeout,
        pool=route.connect_timeout,
    )


def _classify(exc: BaseException, route: Route) -> UpstreamError:
    # The aiohttp transport maps its exceptions coarsely (a read timeout and a refused connection
    # both become httpx.ConnectTimeout), so classify by the original aiohttp exception.
    cause = exc.__cause__ or exc
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return UpstreamError(ErrorKind.TIMEOUT, f"connecting to the upstream of route {route.id} timed out")
    if isinstance(cause, aiohttp.ServerTimeoutError | asyncio.TimeoutError | httpx.TimeoutException):
        return UpstreamError(ErrorKind.TIMEOUT, f"the upstream of route {route.id} timed out")
    if isinstance(cause, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return UpstreamError(ErrorKind.CONNECT, f"could not connect to the upstream of route {route.id}")
    return UpstreamError(ErrorKind.CONNECT, f"the connection to the upstream of route {route.id} failed")


class UpstreamResponse:
    """An open upstream answer. Always `aclose()` it (the pipeline does, in `finally`)."""

    __slots__ = ("_response", "read_timeout", "route")

    def __init__(self, response: httpx.Response, route: Route) -> None:
        self._response = response
        self.route = route
        # Until the first meaningful event a model may still be thinking: the first-byte timeout
        # applies. The pipeline switches to the idle timeout once the stream is committed.
        self.read_timeout = route.first_byte_timeout

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.aread()
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            raise _classify(exc, self.route) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The raw body, each read bounded by `read_timeout` (read at every step)."""
        iterator = self._response.aiter_raw().__aiter__()
        while True:
            try:
                async with asyncio.timeout(self.read_timeout):
                    chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise UpstreamError(ErrorKind.TIMEOUT, f"the upstream of route {self.route.id} timed out") from None
            except (httpx.HTTPError, OSError) as exc:
                raise _classify(exc, self.route) from None
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._response.aclose()
        except Exception:  # noqa: S110 - closing a broken connection must not mask the real outcome
            pass


async def send(up: UpstreamRequest, route: Route) -> UpstreamResponse:
    """Send and wait for the status line and headers (bounded by connect + first-byte timeouts)."""
    client = get_client()
    request = client.build_request("POST", up.url, headers=up.headers, content=up.body, timeout=_timeout(route))
    try:
        response = await client.send(request, stream=True)
    except (TimeoutError, httpx.HTTPError, OSError) as exc:
        raise _classify(exc, route) from None
    return UpstreamResponse(response, route)
