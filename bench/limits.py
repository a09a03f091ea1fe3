"""Limits under load: N gateway processes share one Redis; fire well past a rate limit and a budget.

`python -m bench.limits` (options: --help). It starts its own throwaway `redis-server` (another
port; never the machine's shared one), the bench mock upstream and N Omixa processes (uvicorn, one
worker each, separate ports) on a throwaway SQLite database, then at the same time:

- key `rpm`: `--rpm` requests per minute; `--rpm-factor` x that many requests are fired;
- key `budget`: a daily budget worth `--budget-requests` requests at their worst case (input
  estimate + max_tokens at the output rate); `--budget-factor` x that many requests are fired.

Requests go round-robin to the workers from `--concurrency` connections. Then the usage is priced
(`manage.py price_usage`) and the report compares: admitted vs the RPM limit (target: overshoot 0),
and the budget's spent amount vs the budget and vs the ledger (target: never above the budget;
spent == ledger exactly). Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx

from bench.__main__ import BENCH_MODEL, manage, omixa_env
from bench.procs import ROOT, Proc, free_port, omixa_command, port_open, python_module

MAX_TOKENS = 64  # the mock answers 20 tokens: a worst case ~3x the real cost
PROMPT = [{"role": "user", "content": "Write one short sentence about rate limits."}]

# Run inside Django (manage.py shell): read the key's budget period from Redis and the ledger.
_READ_SPENT = """
import asyncio, json, time
import redis.asyncio as aioredis
from django.conf import settings
from django.db.models import Sum
from billing.models import LedgerEntry
from gateway.limits import from_units, period_of
from gateway.limits_redis import RedisLimiter

async def read():
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    try:
        return await RedisLimiter(client).spent("key:{key_id}", period_of("day", time.time())[0])
    finally:
        await client.aclose()

spent, reserved = asyncio.run(read())
ledger = LedgerEntry.objects.filter(usage_event__api_key_id={key_id}).aggregate(t=Sum("amount"))["t"]
print(json.dumps({{"spent": str(from_units(spent)), "reserved": str(from_units(reserved)), "ledger": str(ledger or 0)}}))
"""


def log(message: str) -> None:
    print(f"[bench.limits] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", "-n", type=int, default=3, help="gateway processes (default 3)")
    parser.add_argument("--concurrency", "-c", type=int, default=48, help="connections in flight (default 48)")
    parser.add_argument("--rpm", type=int, default=150, help="the rpm key's limit (default 150)")
    parser.add_argument("--rpm-factor", type=float, default=4.0, help="requests fired = factor x limit")
    parser.add_argument("--budget-requests", type=int, default=40, help="budget = this many worst cases")
    parser.add_argument("--budget-factor", type=float, default=10.0, help="requests fired = factor x that")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (logs, database)")
    return parser.parse_args(argv)


def _shell(env: dict[str, str], code: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py shell failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


async def _fire(urls: list[str], jobs: list[str], concurrency: int) -> list[tuple[str, int, str]]:
    """Send one request per job (a key), round-robin over the workers; (key, status, error code)."""
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in enumerate(jobs):
        queue.put_nowait(item)
    results: list[tuple[str, int, str]] = []
    body = {"model": BENCH_MODEL, "messages": PROMPT, "max_tokens": MAX_TOKENS}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            index, key = queue.get_nowait()
            try:
                response = await client.post(
                    urls[index % len(urls)], json=body, headers={"Authorization": f"Bearer {key}"}
                )
                code = "" if response.status_code == 200 else (response.json().get("error") or {}).get("code", "")
                results.append((key, response.status_code, code))
            except httpx.HTTPError as exc:
                results.append((key, 0, type(exc).__name__))

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return results


def run(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="omixa-bench-limits-"))
    procs: list[Proc] = []
    redis_proc: subprocess.Popen | None = None
    try:
        redis_port, mock_port = free_port(), free_port()
        redis_proc = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_open(redis_port):
            if time.monotonic() > deadline:
                raise RuntimeError("the throwaway redis-server did not start")
            time.sleep(0.05)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        procs.append(
            Proc("mock", python_module("bench.mock_upstream", "--port", str(mock_port)), mock_port, tmp).start()
        )

        env = omixa_env(
            tmp, [f"REDIS_URL={redis_url}", f"CELERY_BROKER_URL={redis_url[:-1]}1", "OMIXA_LOG_FORMAT=plain"]
        )
        log("omixa: migrate, load_catalog, workspace, two keys, a route to the mock")
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "load_catalog")
        workspace = manage(env, "create_workspace", "--name", "bench-limits")["slug"]
        rpm_key = manage(env, "create_api_key", "--workspace", workspace, "--name", "rpm")
        budget_key = manage(env, "create_api_key", "--workspace", workspace, "--name", "budget")
        manage(env, "add_provider_key", "--model", BENCH_MODEL, "--provider", "openai", "--base-url",
               f"http://127.0.0.1:{mock_port}", "--api-key", "bench-secret", "--deployment", BENCH_MODEL)  # fmt: skip
        # The worst case of one request, as the gateway reserves it (its own input estimate).
        worst = json.loads(
            _shell(
                env,
                "import json; from gateway.spec import ModelSpec; from gateway.limits import reserved_tokens; "
                "from billing.models import Model; from gateway.spec import validate_chat; "
                f"m = Model.objects.get(slug='{BENCH_MODEL}'); card = m.price_cards.order_by('-effective_from')[0]; "
                f"chat = validate_chat({{'model': '{BENCH_MODEL}', 'messages': {PROMPT!r}, 'max_tokens': {MAX_TOKENS}}}, "
                "ModelSpec.from_model(m)); "
                "cost = (chat.estimated_input_tokens * card.input_per_1m + (reserved_tokens(chat) - "
                "chat.estimated_input_tokens) * card.output_per_1m) / 1000000; print(json.dumps(str(cost)))",
            )
        )
        worst = Decimal(worst)
        budget = worst * args.budget_requests
        _shell(
            env,
            "from workspaces.models import ApiKey; "
            f"k = ApiKey.objects.get(id={rpm_key['id']}); k.rpm_limit = {args.rpm}; k.save(); "
            f"k = ApiKey.objects.get(id={budget_key['id']}); k.budget_amount = '{budget}'; k.budget_period = 'day'; "
            "k.save()",
        )

        urls = []
        for i in range(args.workers):
            port = free_port()
            server = Proc(
                f"omixa-{i}",
                omixa_command(port),
                port,
                tmp,
                env={**env, "OMIXA_USAGE_SPOOL_DIR": str(tmp / f"spool-{i}")},
            )
            procs.append(server.start(timeout=60))
            urls.append(f"http://127.0.0.1:{port}/api/v1/chat/completions")

        rpm_fired = int(args.rpm * args.rpm_factor)
        budget_fired = int(args.budget_requests * args.budget_factor)
        jobs = [rpm_key["key"]] * rpm_fired + [budget_key["key"]] * budget_fired
        jobs = [jobs[i] for i in sorted(range(len(jobs)), key=lambda i: (i * 7919) % len(jobs))]  # interleaved
        log(f"firing {len(jobs)} requests at {args.workers} workers from {args.concurrency} connections")
        started = time.monotonic()
        results = asyncio.run(_fire(urls, jobs, args.concurrency))
        elapsed = time.monotonic() - started

        def tally(key: str) -> Counter:
            return Counter(f"{status} {code}".strip() for k, status, code in results if k == key)

        rpm_tally, budget_tally = tally(rpm_key["key"]), tally(budget_key["key"])
        # Wait until every worker has written its usage, then price it (the same code as the Celery task).
        admitted_total = sum(1 for _, status, _ in results if status == 200)
        count = "from billing.models import UsageEvent; print(UsageEvent.objects.count())"
        deadline = time.monotonic() + 60
        while int(_shell(env, count)) < admitted_total and time.monotonic() < deadline:
            time.sleep(1.0)
        manage(env, "price_usage")
        figures = json.loads(_shell(env, _READ_SPENT.format(key_id=budget_key["id"])))
        spent, ledger = Decimal(figures["spent"]), Decimal(figures["ledger"])
        admitted_budget = budget_tally.get("200", 0)
        result = {
            "workers": args.workers,
            "concurrency": args.concurrency,
            "seconds": round(elapsed, 2),
            "rpm": {
                "limit": args.rpm,
                "fired": rpm_fired,
                "admitted": rpm_tally.get("200", 0),
                "overshoot": rpm_tally.get("200", 0) - args.rpm,
                "answers": dict(rpm_tally),
            },
            "budget": {
                "budget": str(budget),
                "worst_case_per_request": str(worst),
                "fired": budget_fired,
                "admitted": admitted_budget,
                "spent": str(spent),
                "reserved_left": str(Decimal(figures["reserved"]).normalize()),
                "budget_worst_cases": args.budget_requests,
                "ledger": str(ledger),
                "spent_equals_ledger": spent == ledger,
                "overshoot": str(max(spent - budget, Decimal(0))),
                "mean_cost": str((spent / admitted_budget).quantize(Decimal("1e-12"))) if admitted_budget else "0",
                "answers": dict(budget_tally),
            },
        }
        result["ok"] = (
            result["rpm"]["overshoot"] == 0
            and spent <= budget
            and spent == ledger
            and all(status in (200, 429) for _, status, _ in results)
        )
        return result
    finally:
        for proc in reversed(procs):
            proc.stop()
        if redis_proc is not None and redis_proc.poll() is None:
            redis_proc.terminate()
            redis_proc.wait(10)
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def render(result: dict) -> str:
    rpm, budget = result["rpm"], result["budget"]
    return "\n".join(
        [
            f"{result['workers']} gateway processes, {result['concurrency']} connections, {result['seconds']} s",
            "",
            "| limit | limit value | fired | admitted | overshoot | answers |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| RPM (key) | {rpm['limit']} | {rpm['fired']} | {rpm['admitted']} | {rpm['overshoot']} | {rpm['answers']} |",
            f"| budget/day (key) | ${budget['budget']} (= {budget['budget_worst_cases']} worst cases) "
            f"| {budget['fired']} | {budget['admitted']} | ${budget['overshoot']} | {budget['answers']} |",
            "",
            f"budget: spent ${budget['spent']} of ${budget['budget']}; ledger ${budget['ledger']} "
            f"(equal: {budget['spent_equals_ledger']}); reserved left ${budget['reserved_left']}; "
            f"worst case ${budget['worst_case_per_request']}, mean real cost ${budget['mean_cost']} per request",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if shutil.which("redis-server") is None:
        sys.exit("bench.limits needs the redis-server binary (a throwaway instance is started)")
    result = run(args)
    print(render(result))
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
