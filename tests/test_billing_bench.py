"""The billing benchmark works end to end on a small count (its figures are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="the billing benchmark is about PostgreSQL (DATABASE_URL=postgres://...)",
)
def test_billing_benchmark_prices_rolls_up_and_reconciles_a_small_month():
    database = f"omixa_bench_billing_smoke_{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.billing", "--events", "4000", "--batch-size", "500", "--database", database],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["events"] == 4000 and summary["workers"] == 2
    assert all(summary["checks"].values()), summary["checks"]
    assert summary["pricing_events_per_s"] > 0 and summary["rollup_s_1m"] >= 0
    assert len(summary["rss_mb"]) == 2 and "4000" in summary["rss_mb"]  # after a first tenth, and at the end
    # The scratch database is dropped at the end.
    import psycopg

    from bench.billing import _scratch_url

    _, admin = _scratch_url(os.environ["DATABASE_URL"], database)
    with psycopg.connect(admin, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone() is None
