"""Prometheus metrics at /metrics, scraped after real traffic through the gateway (mock upstream).

The in-process registry lives as long as the test process, so every assertion is on the change
between a scrape before and a scrape after the traffic. Multiprocess mode is tested with a real
`uvicorn --workers 2` in a subprocess sharing PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from billing.models import UsageEvent
from gateway import metrics
from gateway.services import provider_key_add
from tests.gateway_fixtures import free_port, gateway, mock_route, world  # noqa: F401
from tests.mocks.fixtures import mock_upstream  # noqa: F401
from tests.mocks.upstream import server_error

REPO_ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "codex-mini", "messages": [{"role": "user", "content": "hello"}]}
STREAM = {**BODY, "stream": True, "stream_options": {"include_usage": True}}

Samples = dict[tuple[str, frozenset], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def post(gateway, key: str, body: dict) -> httpx.Response:
    return httpx.post(
        gateway.api + "/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body, timeout=20
    )


def stream_usage(response: httpx.Response) -> dict:
    for block in response.content.split(b"\n\n"):
        if block.startswith(b"data: {"):
            chunk = orjson.loads(block[6:])
            if chunk.get("usage"):
                return chunk["usage"]
    raise AssertionError("no usage chunk in the stream")


def test_requests_tokens_cost_and_latencies_follow_the_traffic(gateway, world, mock_upstream):
    route = mock_route(gateway, mock_upstream)
    rid = str(route.id)
    before = scrape(gateway.url)

    usages = []
    for _ in range(3):
        response = post(gateway, world.key, BODY)
        assert response.status_code == 200, response.text
        usages.append(response.json()["usage"])
    for _ in range(2):
        response = post(gateway, world.key, STREAM)
        assert response.status_code == 200, response.text
        usages.append(stream_usage(response))
    assert post(gateway, "omx_live_" + "x" * 40, BODY).status_code == 401
    assert post(gateway, world.key, {**BODY, "model": "no-such-model"}).status_code == 404
    assert post(gateway, world.key, {**BODY, "temperature": "hot"}).status_code == 400
    gateway.flush_usage()
    after = scrape(gateway.url)

    # Requests: one sample per (model, route, status); refusals before any route have no route.
    assert delta(before, after, "omixa_requests_total", model="codex-mini", route=rid, status="200") == 5
    assert delta(before, after, "omixa_requests_total", model="", route="", status="401") == 1
    assert delta(before, after, "omixa_requests_total", model="", route="", status="404") == 1
    assert delta(before, after, "omixa_requests_total", model="codex-mini", route="", status="400") == 1
    ok = {"model": "codex-mini", "route": rid, "outcome": "ok", "status": "200"}
    assert delta(before, after, "omixa_upstream_attempts_total", **ok) == 5

    # Tokens and cost: the sums of what the answers reported (the usage records agree).
    events = UsageEvent.objects.filter(route_id=route.id)
    assert events.count() == 5
    tokens = {
        "input": sum(e.input_tokens for e in events),
        "cached_input": sum(e.cached_input_tokens for e in events),
        "output": sum(e.output_tokens for e in events),
        "reasoning": sum(e.reasoning_tokens for e in events),
    }
    assert tokens["input"] > 0 and tokens["output"] > 0
    for kind, count in tokens.items():
        assert delta(before, after, "omixa_tokens_total", model="codex-mini", kind=kind) == count, kind
    assert sum(u["prompt_tokens"] for u in usages) == tokens["input"] + tokens["cached_input"]
    cost = sum(Decimal(u["cost"]) for u in usages)
    assert cost > 0
    assert delta(before, after, "omixa_cost_usd_total", model="codex-mini") == pytest.approx(float(cost), rel=1e-9)

    # Latencies: one upstream observation per attempt, one overhead per answer, first chunk per stream.
    route_labels = {"model": "codex-mini", "route": rid}
    assert delta(before, after, "omixa_upstream_latency_seconds_count", **route_labels) == 5
    upstream_s = delta(before, after, "omixa_upstream_latency_seconds_sum", **route_labels)
    assert 0 < upstream_s < 5 * 20
    assert delta(before, after, "omixa_overhead_seconds_count", model="codex-mini") == 5
    overhead_s = delta(before, after, "omixa_overhead_seconds_sum", model="codex-mini")
    assert 0 < overhead_s < 5 * 0.5  # Omixa's own share: well under half a second a request
    assert delta(before, after, "omixa_time_to_first_chunk_seconds_count", model="codex-mini") == 2
    bucket = {"model": "codex-mini", "le": "+Inf"}
    assert delta(before, after, "omixa_time_to_first_chunk_seconds_bucket", **bucket) == 2


def test_a_body_refused_as_too_large_is_counted(gateway, world, settings):
    settings.OMIXA_MAX_REQUEST_BYTES = 2000
    before = scrape(gateway.url)
    big = {**BODY, "messages": [{"role": "user", "content": "x" * 5000}]}
    assert post(gateway, world.key, big).status_code == 413
    after = scrape(gateway.url)
    assert delta(before, after, "omixa_requests_total", model="", route="", status="413") == 1


def test_no_key_or_secret_appears_in_the_scrape(gateway, world, mock_upstream):
    mock_route(gateway, mock_upstream, name="primary-route")
    assert post(gateway, world.key, BODY).status_code == 200
    assert post(gateway, world.key + "tampered", BODY).status_code == 401
    text = httpx.get(gateway.url + "/metrics", timeout=10).text
    assert "omixa_requests_total" in text
    for secret in (world.key, world.key[:16], mock_upstream.azure_key, "omx_live_"):
        assert secret not in text
    # Labels name models, routes and outcomes only: no key, workspace or user dimension at all.
    names = {
        name
        for f in text_string_to_metric_families(text)
        if f.name.startswith("omixa_")
        for s in f.samples
        for name in s.labels
    }
    assert names <= {
        "model",
        "route",
        "route_name",
        "status",
        "outcome",
        "kind",
        "limit",
        "scope",
        "state",
        "le",
        "fail_mode",
    }, names
    assert 'route_name="primary-route"' in text  # routes are named by the operator's name, never their secret


def test_a_failover_counts_each_route_attempt_with_its_status(gateway, world, mock_upstream):
    mock_upstream.add_deployment("codex-mini-backup", reasoning=True)
    primary = mock_route(gateway, mock_upstream, name="primary", priority=1)
    backup = mock_route(gateway, mock_upstream, name="backup", priority=2, deployment="codex-mini-backup")
    mock_upstream.script(server_error(500), deployment="codex-mini")
    before = scrape(gateway.url)
    response = post(gateway, world.key, BODY)
    assert response.status_code == 200
    assert response.headers["x-omixa-route"] == str(backup.id)
    after = scrape(gateway.url)

    failed = {"model": "codex-mini", "route": str(primary.id), "outcome": "server", "status": "500"}
    served = {"model": "codex-mini", "route": str(backup.id), "outcome": "ok", "status": "200"}
    assert delta(before, after, "omixa_upstream_attempts_total", **failed) == 1
    assert delta(before, after, "omixa_upstream_attempts_total", **served) == 1
    assert delta(before, after, "omixa_requests_total", model="codex-mini", route=str(backup.id), status="200") == 1
    assert delta(before, after, "omixa_requests_total", model="codex-mini", route=str(primary.id), status="200") == 0
    # Both attempts waited on an upstream.
    for route in (primary, backup):
        labels = {"model": "codex-mini", "route": str(route.id)}
        assert delta(before, after, "omixa_upstream_latency_seconds_count", **labels) == 1


def route_state(samples: Samples, route) -> str:
    states = [
        state
        for state in metrics.ROUTE_STATES
        if value(
            samples, "omixa_route_state", route=str(route.id), route_name=route.name, model="codex-mini", state=state
        )
        == 1.0
    ]
    assert len(states) == 1, states
    return states[0]


def test_route_state_shows_a_route_in_cooldown_as_open(gateway, world, mock_upstream):
    route = mock_route(gateway, mock_upstream, name="flaky")
    assert route_state(scrape(gateway.url), route) == "closed"
    mock_upstream.always(server_error(500))
    for _ in range(3):  # the breaker's threshold
        assert post(gateway, world.key, BODY).status_code == 502
    before = scrape(gateway.url)
    assert route_state(before, route) == "open"

    # While it cools down a request is refused without reaching it: counted, with no route.
    response = post(gateway, world.key, BODY)
    assert response.status_code == 503
    after = scrape(gateway.url)
    assert delta(before, after, "omixa_requests_total", model="codex-mini", route="", status="503") == 1
    assert route_state(after, route) == "open"


def test_route_state_goes_half_open_after_the_cooldown_then_closed_after_a_good_probe(
    gateway, world, mock_upstream, monkeypatch
):
    from gateway import breaker

    monkeypatch.setattr(breaker, "BASE_COOLDOWN", 1.0)
    route = mock_route(gateway, mock_upstream, name="recovering")
    mock_upstream.always(server_error(500))
    for _ in range(3):
        assert post(gateway, world.key, BODY).status_code == 502
    assert route_state(scrape(gateway.url), route) == "open"
    time.sleep(1.2)
    assert route_state(scrape(gateway.url), route) == "half_open"
    mock_upstream.reset()
    assert post(gateway, world.key, BODY).status_code == 200  # the probe succeeds
    assert route_state(scrape(gateway.url), route) == "closed"


def test_route_state_shows_a_key_out_of_rotation_and_a_disabled_route(gateway, world, mock_upstream):
    def add(name: str, priority: int, **fields):
        fields.setdefault("api_key", mock_upstream.azure_key)
        return provider_key_add(
            model_slug="codex-mini",
            provider="azure-openai",
            base_url=mock_upstream.url,
            deployment="codex-mini",
            name=name,
            priority=priority,
            **fields,
        )

    bad = add("bad-secret", 1, api_key="wrong-secret-0123456789")
    good = add("good", 2)
    off = add("switched-off", 3, enabled=False)
    gateway.refresh()
    assert post(gateway, world.key, BODY).status_code == 200  # the bad key fails over to the good one
    samples = scrape(gateway.url)
    assert route_state(samples, bad) == "disabled"
    assert route_state(samples, off) == "disabled"
    assert route_state(samples, good) == "closed"


def test_pending_pricing_gauge_counts_unpriced_usage_events(gateway, world):
    def event(state: str) -> UsageEvent:
        import uuid

        return UsageEvent(
            request_id=uuid.uuid4(),
            created_at=timezone.now(),
            workspace=world.workspace,
            model_slug="codex-mini",
            outcome="completed",
            http_status=200,
            pricing_state=state,
        )

    pending = UsageEvent.objects.filter(pricing_state="pending").count()
    UsageEvent.objects.bulk_create([event("pending"), event("pending"), event("pending"), event("priced")])
    metrics.pending_pricing.forget()
    assert value(scrape(gateway.url), "omixa_usage_pending_pricing") == pending + 3
    # Cached for a few seconds: a burst of scrapes costs one COUNT.
    UsageEvent.objects.bulk_create([event("pending")])
    assert value(scrape(gateway.url), "omixa_usage_pending_pricing") == pending + 3
    metrics.pending_pricing.forget()
    assert value(scrape(gateway.url), "omixa_usage_pending_pricing") == pending + 4


def test_limit_rejections_are_counted_by_limit_and_scope(gateway):
    before = scrape(gateway.url)
    metrics.limit_rejected("requests", "key")
    metrics.limit_rejected("requests", "key")
    metrics.limit_rejected("budget", "workspace")
    after = scrape(gateway.url)
    assert delta(before, after, "omixa_limit_rejections_total", limit="requests", scope="key") == 2
    assert delta(before, after, "omixa_limit_rejections_total", limit="budget", scope="workspace") == 1


# --- several worker processes -----------------------------------------------------------------------------


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def two_workers(transactional_db, tmp_path):
    """`uvicorn --workers 2` on the test database, metrics shared through PROMETHEUS_MULTIPROC_DIR."""
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "OMIXA_VAR_DIR": str(tmp_path),
        "OMIXA_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    log = open(tmp_path / "server.log", "wb")
    command = [sys.executable, "-m", "uvicorn", "omixa.asgi:application", "--port", str(port), "--workers", "2"]
    process = subprocess.Popen(
        [*command, "--lifespan", "on", "--no-access-log"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the workers did not start"
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url, metrics_dir
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_two_worker_processes_report_one_sum_from_any_worker(world, mock_upstream, tmp_path, request):
    route = provider_key_add(
        model_slug="codex-mini",
        provider="azure-openai",
        base_url=mock_upstream.url,
        api_key=mock_upstream.azure_key,
        deployment="codex-mini",
        priority=1,
    )
    url, metrics_dir = request.getfixturevalue("two_workers")  # after the route: workers load it at start
    labels = {"model": "codex-mini", "route": str(route.id), "status": "200"}

    def call(_: int) -> int:
        response = httpx.post(
            url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {world.key}"}, json=BODY, timeout=30
        )
        return response.status_code

    with ThreadPoolExecutor(8) as pool:  # one connection each: the kernel spreads them over both workers
        assert list(pool.map(call, range(24))) == [200] * 24
    # Whichever worker answers the scrape, it sums every worker's files.
    for _ in range(6):
        assert value(scrape(url), "omixa_requests_total", **labels) == 24
    files = sorted(p.name for p in metrics_dir.glob("*.db"))
    print(files)
    assert any(name.startswith("counter_") for name in files), files
