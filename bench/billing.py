"""``python -m bench.billing``: price 1,000,000 pending usage events and roll up their month, on PostgreSQL.

Needs ``DATABASE_URL`` pointing at a PostgreSQL server (any database on it: the benchmark only uses
it to create its own scratch database, ``omixa_bench_billing`` by default, which it drops at the end
unless ``--keep``). It migrates the scratch database, loads the catalog (plus a priority-tier card
for codex-mini, so the tier lookup and its fallback both run), creates workspaces and generates the
pending events in PostgreSQL itself (``INSERT ... SELECT FROM generate_series``: 28 days of requests
from the start of the current month, over five models, three tiers, one event in 200 on an unknown
model).

Then it measures, in this one process:

1. pricing: ``billing.services.usage_price_pending`` (what the Celery sweep calls) in batches of
   ``BATCH_SIZE``; first 10% of the events, then the rest; events/s and this process's RSS after
   each step (memory must not grow with the count: nothing holds rows in Python);
2. the roll-up of the month (``invoice_roll_up``, what the beat task calls) at 10% and at 100% of
   the ledger: a draft roll-up, then the finalization; seconds and RSS;
3. ``reconcile`` of the month (must find no mismatch) and checks: every event priced or unpriced,
   one ledger entry per priced event, the invoices' total equal to the ledger's rounded lines.

Prints a markdown table and one JSON line; exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

TARGET_EVENTS_PER_S = 20_000
TARGET_ROLLUP_S = 10.0
WORKSPACES = 200

# Tokens vary per event but deterministically (g is the series number): the run is repeatable.
# Request ids are time-ordered like the gateway's (UUIDv7: the millisecond first, then random bits).
_GENERATE_SQL = """
INSERT INTO billing_usageevent (
    request_id, client_request_id, created_at, recorded_at, workspace_id, api_key_id, model_slug, route_id,
    route_name, provider, endpoint_type, stream, outcome, http_status, service_tier, input_tokens,
    cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, estimated, attempts, latency_ms,
    first_byte_ms, error_code, pricing_state
)
SELECT (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3) || '8'
        || substr(h, 4, 15))::uuid,
       '', at, now(),
       (%(workspaces)s)[(1 + (g / 7) %% cardinality(%(workspaces)s))::int], NULL,
       CASE WHEN g %% 200 = 0 THEN 'retired-model'
            ELSE (ARRAY['codex-mini', 'gpt-4.1-mini', 'gemini-2.5-flash', 'gemini-2.5-pro',
                        'claude-sonnet-4-5'])[(1 + g %% 5)::int] END,
       NULL, 'bench', 'openai', 'openai_chat', g %% 3 = 0, 'completed', 200,
       (ARRAY['', 'priority', 'default'])[(1 + g %% 3)::int],
       100 + (g * 7919) %% 20000, (g * 104729) %% 4000, CASE WHEN g %% 7 = 0 THEN 512 ELSE 0 END,
       (g * 1299709) %% 3000, (g * 15485863) %% 500 * ((g * 1299709) %% 3000 >= 500)::int,
       false, '[]'::jsonb, 100, NULL, '', 'pending'
FROM generate_series(1::bigint, %(count)s::bigint) AS g,
     LATERAL (SELECT %(start)s + (g * %(step_us)s) * interval '1 microsecond' AS at, md5(g::text) AS h) AS e
"""


def _rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    current = 0.0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _scratch_url(base: str, name: str) -> tuple[str, str]:
    """The scratch database's URL, and the server's maintenance database URL (to create/drop it)."""
    parts = urlsplit(base)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise SystemExit("bench.billing needs DATABASE_URL=postgres://... (the benchmark is about PostgreSQL)")
    return urlunsplit(parts._replace(path=f"/{name}")), urlunsplit(parts._replace(path="/postgres"))


def _recreate(admin_url: str, name: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def _setup_django(url: str) -> None:
    from cryptography.fernet import Fernet

    os.environ.update(
        {
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "omixa.settings",
            "OMIXA_DEBUG": "0",  # DEBUG would keep every query in memory
            "OMIXA_SECRET_KEY": os.environ.get("OMIXA_SECRET_KEY") or os.urandom(32).hex(),
            "OMIXA_ENCRYPTION_KEY": os.environ.get("OMIXA_ENCRYPTION_KEY") or Fernet.generate_key().decode(),
            "OMIXA_LOG_LEVEL": "WARNING",
        }
    )
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    import logging

    import django

    django.setup()
    logging.getLogger("billing").setLevel(logging.ERROR)  # one "marked unpriced" warning per batch otherwise


def _prepare(count: int, period: datetime) -> float:
    from decimal import Decimal

    from django.core.management import call_command
    from django.db import connection

    from billing.models import Model, PriceCard
    from workspaces.models import Workspace

    call_command("migrate", verbosity=0)
    call_command("load_catalog", stdout=open(os.devnull, "w"))
    PriceCard.objects.create(
        model=Model.objects.get(slug="codex-mini"),
        service_tier="priority",
        input_per_1m=Decimal("3.00"),
        cached_input_per_1m=Decimal("0.75"),
        output_per_1m=Decimal("12.00"),
        effective_from=period - timedelta(days=1),
    )
    Workspace.objects.bulk_create(Workspace(name=f"Bench {i}", slug=f"bench-{i}") for i in range(WORKSPACES))
    workspaces = list(Workspace.objects.values_list("id", flat=True))
    step_us = int((timedelta(days=28).total_seconds() * 1_000_000) // count)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(_GENERATE_SQL, {"start": period, "step_us": step_us, "workspaces": workspaces, "count": count})
        cursor.execute("ANALYZE billing_usageevent")
    return time.perf_counter() - started


def _cpu_seconds(pid: int) -> float | None:
    """user + system CPU seconds of a local process (None when it is not readable, e.g. a remote server)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _drain(batch_size: int, max_batches: int | None) -> dict:
    """One pricing worker: the sweep's own drain loop, on its own connection; with the CPU time it
    and its PostgreSQL backend spent (a figure other load on the machine does not inflate)."""
    from django.db import connection, connections

    from billing.services import usage_price_pending

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        db_before, own_before = _cpu_seconds(backend), _own_cpu_seconds()
        totals = usage_price_pending(batch_size=batch_size, max_batches=max_batches)
        db_after = _cpu_seconds(backend)
        totals["db_cpu_s"] = None if db_before is None or db_after is None else db_after - db_before
        totals["worker_cpu_s"] = _own_cpu_seconds() - own_before
        return totals
    finally:
        connections.close_all()


def _price(limit_events: int | None, batch_size: int, workers: int) -> dict:
    """Price (up to `limit_events`) pending events with `workers` processes side by side, as Celery's
    worker processes would (rows are claimed with SKIP LOCKED, so they never take the same batch).
    Returns the counts, seconds, CPU seconds and the peak RSS (MB) of a pricing process."""
    max_batches = None if limit_events is None else max(1, limit_events // batch_size // workers)
    if workers == 1:
        started = time.perf_counter()
        totals = [_drain(batch_size, max_batches)]
        elapsed = time.perf_counter() - started
        peak = _rss_mb()[1]
    else:
        from django.db import connections

        connections.close_all()  # never share a connection with the forked workers
        pool = multiprocessing.get_context("fork").Pool(workers)
        started = time.perf_counter()
        totals = pool.starmap(_drain, [(batch_size, max_batches)] * workers)
        elapsed = time.perf_counter() - started
        pool.close()
        pool.join()
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    db_cpu = [t["db_cpu_s"] for t in totals]
    return {
        "priced": sum(t["priced"] for t in totals),
        "unpriced": sum(t["unpriced"] for t in totals),
        "seconds": elapsed,
        "cpu_s": None if None in db_cpu else sum(db_cpu) + sum(t["worker_cpu_s"] for t in totals),
        "peak_rss_mb": peak,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database", default="omixa_bench_billing", help="scratch database name (recreated)")
    parser.add_argument("--keep", action="store_true", help="leave the scratch database for inspection")
    parser.add_argument("--batch-size", type=int, default=None, help="default: billing.services.BATCH_SIZE")
    parser.add_argument(
        "--workers", type=int, default=2, help="pricing processes side by side (default 2: one per core, as Celery)"
    )
    args = parser.parse_args(argv)
    url, admin_url = _scratch_url(os.environ.get("DATABASE_URL", ""), args.database)
    _recreate(admin_url, args.database)
    try:
        return _run(args, url)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            _recreate(admin_url, args.database, drop_only=True)


def _run(args: argparse.Namespace, url: str) -> int:
    _setup_django(url)
    from django.db import connection
    from django.db.models import Count, Sum

    from billing.models import Invoice, InvoiceLine, LedgerEntry, UsageEvent
    from billing.reconcile import reconcile_period
    from billing.services import BATCH_SIZE, INVOICE_GRACE, invoice_roll_up, month_after

    batch_size = args.batch_size or BATCH_SIZE
    now = datetime.now(UTC)
    # The current month, as in steady state: events are priced within their month (so none is a
    # late-usage candidate); the roll-up and finalization are then run "as of" after the month.
    period = datetime(now.year, now.month, 1, tzinfo=UTC)
    generate_s = _prepare(args.events, period)
    rows: list[dict] = []
    checks: dict[str, bool] = {}

    tenth = max(batch_size, args.events // 10)
    load_before = os.getloadavg()[0]
    first = _price(tenth, batch_size, args.workers)
    rss_a = _rss_mb()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_ledgerentry")
    started = time.perf_counter()
    invoice_roll_up(period=period, now=month_after(period) + timedelta(hours=1))
    rollup_a = time.perf_counter() - started
    events_a = first["priced"] + first["unpriced"]
    rows.append(
        {
            "events": events_a,
            "pricing_s": first["seconds"],
            "events_per_s": events_a / first["seconds"],
            "rollup_s": rollup_a,
            "rss_mb": rss_a[0],
            "peak_rss_mb": rss_a[1],
            "worker_peak_rss_mb": first["peak_rss_mb"],
        }
    )

    rest = _price(None, batch_size, args.workers)
    load_after = os.getloadavg()[0]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_ledgerentry")
    started = time.perf_counter()
    invoice_roll_up(period=period, now=month_after(period) + timedelta(hours=1))
    rollup_b = time.perf_counter() - started
    started = time.perf_counter()
    invoice_roll_up(period=period, finalize=True, now=month_after(period) + INVOICE_GRACE)
    finalize_b = time.perf_counter() - started
    started = time.perf_counter()
    report = reconcile_period(period)
    reconcile_s = time.perf_counter() - started
    rss_c = _rss_mb()
    total_events = events_a + rest["priced"] + rest["unpriced"]
    total_s = first["seconds"] + rest["seconds"]
    cpu_s = None if None in (first["cpu_s"], rest["cpu_s"]) else first["cpu_s"] + rest["cpu_s"]
    rows.append(
        {
            "events": total_events,
            "pricing_s": total_s,
            "events_per_s": total_events / total_s,
            "rollup_s": rollup_b,
            "rss_mb": rss_c[0],
            "peak_rss_mb": rss_c[1],
            "worker_peak_rss_mb": rest["peak_rss_mb"],
        }
    )

    ledger = LedgerEntry.objects.aggregate(n=Count("id"), events=Count("usage_event", distinct=True))
    states = dict(UsageEvent.objects.values_list("pricing_state").annotate(n=Count("id")).order_by())
    checks["every event priced or unpriced"] = states.get("pending", 0) == 0 and sum(states.values()) == args.events
    checks["one ledger entry per priced event"] = ledger["n"] == ledger["events"] == states.get("priced", 0)
    checks["unknown model flagged unpriced"] = states.get("unpriced", 0) == args.events // 200
    checks["invoices finalized"] = not Invoice.objects.exclude(status=Invoice.Status.FINALIZED).exists()
    invoice_total = Invoice.objects.aggregate(s=Sum("total"))["s"]
    checks["invoice totals are their lines"] = invoice_total == InvoiceLine.objects.aggregate(s=Sum("amount"))["s"]
    checks["reconcile finds no mismatch"] = report["mismatches"] == []

    summary = {
        "events": args.events,
        "batch_size": batch_size,
        "workers": args.workers,
        "generate_s": round(generate_s, 1),
        "pricing_events_per_s": round(total_events / total_s),
        "pricing_s": round(total_s, 1),
        # CPU time of the pricing processes and their PostgreSQL backends: what a priced event costs,
        # whatever else the machine runs; cores / that = the rate if the cores were pricing's alone.
        "pricing_cpu_us_per_event": None if cpu_s is None else round(cpu_s / total_events * 1e6, 1),
        "pricing_events_per_s_if_cores_were_ours": None
        if cpu_s is None
        else round(min(args.workers, os.cpu_count() or 1) * total_events / cpu_s),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "rollup_s_1m": round(rollup_b, 2),
        "finalize_s_1m": round(finalize_b, 2),
        "reconcile_s_1m": round(reconcile_s, 2),
        "rss_mb": {f"{r['events']}": round(r["rss_mb"], 1) for r in rows},
        "peak_rss_mb": {f"{r['events']}": round(r["peak_rss_mb"], 1) for r in rows},
        "pricing_worker_peak_rss_mb": {f"{r['events']}": round(r["worker_peak_rss_mb"], 1) for r in rows},
        "invoices": Invoice.objects.count(),
        "invoice_total": str(invoice_total),
        "checks": checks,
        "targets_met": {
            f"pricing >= {TARGET_EVENTS_PER_S}/s": total_events / total_s >= TARGET_EVENTS_PER_S,
            f"roll-up < {TARGET_ROLLUP_S:g} s": max(rollup_b, finalize_b) < TARGET_ROLLUP_S,
        },
    }
    print(
        f"\nbilling benchmark on PostgreSQL: {args.events:,} events over {WORKSPACES} workspaces, "
        f"{args.workers} pricing process(es), batches of {batch_size:,}; events generated in {generate_s:.1f} s\n"
    )
    print(
        "| events priced | pricing s | events/s | month roll-up s | RSS MB | peak RSS MB | pricing worker peak RSS MB |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['events']:,} | {r['pricing_s']:.1f} | {r['events_per_s']:,.0f} | {r['rollup_s']:.2f} "
            f"| {r['rss_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['worker_peak_rss_mb']:.0f} |"
        )
    print(f"\nfinalization of the month: {finalize_b:.2f} s; reconcile of the month: {reconcile_s:.2f} s")
    if cpu_s is not None:
        print(
            f"pricing CPU (workers + their PostgreSQL backends): {cpu_s / total_events * 1e6:.1f} µs per event, i.e. "
            f"{summary['pricing_events_per_s_if_cores_were_ours']:,} events/s if {args.workers} cores were pricing's "
            f"alone; load average {load_before:.1f} before pricing, {load_after:.1f} after (other work on the machine)"
        )
    for name, ok in {**checks, **summary["targets_met"]}.items():
        print(f"- {'ok' if ok else 'FAILED'}: {name}")
    print(json.dumps(summary))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
