"""Without a broker the gateway runs the beat schedule itself, so pending usage is swept and draft
invoices rolled up even when nothing but `make run` is running."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest

from billing.models import Invoice, UsageEvent
from omixa.celery import app as celery_app
from omixa.eager_beat import EagerBeat
from tests.gateway_fixtures import gateway, world  # noqa: F401
from tests.test_billing_pricing import make_event


def test_each_entry_runs_when_due_and_not_before(world, catalog):
    event = make_event(world.workspace, input_tokens=1_000, output_tokens=10)
    beat = EagerBeat(celery_app)
    assert beat.run_due() == []  # the first run is one interval after start, as celery beat does
    event.refresh_from_db()
    assert event.pricing_state == UsageEvent.PricingState.PENDING

    for name in list(beat._last_run):
        beat._last_run[name] -= timedelta(minutes=16)
    assert sorted(beat.run_due()) == ["price-pending-usage", "roll-up-invoices"]
    event.refresh_from_db()
    assert event.pricing_state == UsageEvent.PricingState.PRICED
    assert Invoice.objects.filter(workspace=world.workspace).count() == 1
    assert beat.run_due() == []  # just ran: not due again


def test_a_failing_task_is_logged_and_the_others_still_run(world, catalog, monkeypatch, caplog):
    beat = EagerBeat(celery_app)
    beat.run_due()
    for name in list(beat._last_run):
        beat._last_run[name] -= timedelta(minutes=16)

    def broken(*args, **kwargs):
        raise RuntimeError("roll-up exploded")

    monkeypatch.setattr(celery_app.tasks["billing.tasks.roll_up_invoices"], "apply", broken)
    with caplog.at_level(logging.ERROR, logger="omixa.eager_beat"):
        assert beat.run_due() == ["price-pending-usage"]
    assert "roll-up-invoices failed" in caplog.text


@pytest.fixture(params=[True, False], ids=["no-broker", "broker"])
def eager_mode(request, settings):
    settings.OMIXA_EAGER_BEAT = True
    settings.CELERY_TASK_ALWAYS_EAGER = request.param
    return request.param


def test_the_gateway_runs_the_beat_only_without_a_broker(eager_mode, gateway):
    from gateway import runtime

    rt = runtime.current()
    assert rt is not None
    if not eager_mode:
        assert rt.beat is None  # `celery beat` and the workers do it
        return
    deadline = time.monotonic() + 5
    while not rt.beat._thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rt.beat._thread.is_alive()
