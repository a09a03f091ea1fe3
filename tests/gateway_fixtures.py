"""Fixtures for gateway tests through the real surface: Omixa served over HTTP by uvicorn (in a
thread, lifespan on) against the test database, with a workspace, an inference key and the catalog.

Import the fixtures you use into a test module: `from tests.gateway_fixtures import gateway, world`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Gateway:
    url: str
    server: uvicorn.Server

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def flush_usage(self, timeout: float = 10.0) -> None:
        from gateway import runtime

        assert runtime.flush_usage(timeout), "usage events were not written in time"

    def refresh(self) -> None:
        """Reload the snapshot now (instead of waiting for the once-a-second poll)."""
        import asyncio

        from gateway import runtime

        rt = runtime.current()
        assert rt is not None and rt.loop is not None
        future = asyncio.run_coroutine_threadsafe(runtime.reload(), rt.loop)
        future.result(timeout=10)


def clear_shared_breaker_state() -> None:
    """Route ids restart with every test database: forget breaker state left in Redis."""
    from django.conf import settings

    if not settings.REDIS_URL:
        return
    import redis

    from gateway import breaker

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{breaker.HASH_KEY}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def gateway(transactional_db, settings, tmp_path) -> Iterator[Gateway]:
    settings.OMIXA_USAGE_SPOOL_DIR = tmp_path / "spool"
    clear_shared_breaker_state()
    from django.db import DEFAULT_DB_ALIAS, connections

    from omixa.asgi import application

    # Pages, the management API and /metrics read the database from the server's threads; persistent
    # connections there would outlive the test, and PostgreSQL would refuse to drop the test database.
    database = connections.settings[DEFAULT_DB_ALIAS]
    saved_max_age = database["CONN_MAX_AGE"]
    database["CONN_MAX_AGE"] = 0

    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_level="warning",
        loop="asyncio",
        http="h11",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="omixa-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "the gateway did not start"
        assert thread.is_alive(), "the gateway server thread died at start-up"
        time.sleep(0.02)
    try:
        yield Gateway(url=f"http://127.0.0.1:{port}", server=server)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        database["CONN_MAX_AGE"] = saved_max_age


@dataclass
class World:
    workspace: object
    key: str
    key_row: object
    other_workspace: object
    other_key: str


@pytest.fixture
def world(transactional_db) -> World:
    from billing.catalog import catalog_load
    from workspaces.services import api_key_issue, workspace_create

    catalog_load()
    workspace = workspace_create(name="Acme")
    key_row, key = api_key_issue(workspace=workspace, name="ci")
    other = workspace_create(name="Other")
    _, other_key = api_key_issue(workspace=other, name="ci")
    return World(workspace=workspace, key=key, key_row=key_row, other_workspace=other, other_key=other_key)


def mock_route(gateway: Gateway, mock, *, model_slug: str = "codex-mini", deployment: str = "codex-mini", **fields):
    """A codex-mini route (Azure v1) to the mock upstream, live in the gateway's snapshot."""
    from gateway.services import provider_key_add

    fields.setdefault("priority", 10)
    row = provider_key_add(
        model_slug=model_slug,
        provider="azure-openai",
        base_url=mock.url,
        api_key=mock.azure_key,
        deployment=deployment,
        **fields,
    )
    gateway.refresh()
    return row
