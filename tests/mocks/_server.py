"""What every mock upstream shares: an aiohttp app on 127.0.0.1 (a free port), served by its own
event loop in a background thread, so that code under test reaches it over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, Self, TypeVar

from aiohttp import web


class ThreadedServer:
    thread_name = "mock"

    def __init__(self) -> None:
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    def build_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """The provider root, as an operator types it as a route's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        if self._thread:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start(sock))
            except BaseException as exc:  # surfaced to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            with contextlib.suppress(Exception):
                loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
            # Handlers still sleeping out a scripted delay: cancel them, so none is destroyed pending.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name=f"{self.thread_name}-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if not self._thread or not self._loop:
            return
        self._closing = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self, sock: socket.socket) -> None:
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()


S = TypeVar("S")


class Scripts(Generic[S]):
    """Scenarios queued for a mock's next requests, to one target (a model, a deployment) or to any.

    `add(s, target, times)` queues `s` for the next `times` requests (None: every request until
    `clear`); a target's own queue wins over the queue for any; each queue is FIFO. Thread-safe.
    """

    def __init__(self, default: Callable[[], S]) -> None:
        self._default = default
        self._lock = threading.Lock()
        self._any: deque[list] = deque()  # [scenario, remaining or None]
        self._per_target: dict[str, deque[list]] = {}

    def add(self, scenario: S, target: str | None = None, times: int | None = 1) -> None:
        with self._lock:
            queue = self._any if target is None else self._per_target.setdefault(target, deque())
            queue.append([scenario, times])

    def next(self, target: str | None) -> S:
        with self._lock:
            for queue in (self._per_target.get(target or ""), self._any):
                if queue:
                    item = queue[0]
                    if item[1] is not None:
                        item[1] -= 1
                        if item[1] <= 0:
                            queue.popleft()
                    return item[0]
        return self._default()

    def clear(self) -> None:
        with self._lock:
            self._any.clear()
            self._per_target.clear()
