"""``python -m bench`` (``make bench``): one benchmark run, one markdown table, the ratios the targets need.

Starts the mock upstream, the bare-Django floor(s) and Omixa (1 uvicorn worker, a throwaway SQLite
database prepared with the management commands), then runs the same closed-loop load against each
target, interleaved (for every cell all targets run back to back, so drift on a shared machine hits
them alike). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.loadgen import chat_url, request_body
from bench.procs import ROOT, Proc, cpu_seconds, free_port, http_post, omixa_command, python_module, rss_kib

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ALL_TARGETS = ("direct", "floor", "floor-httpx", "floor-lean", "omixa")
BENCH_MODEL = "gpt-4.1-mini"


@dataclass
class Target:
    name: str
    url: str
    key: str = ""
    model: str = BENCH_MODEL
    pid: int | None = None  # the serving process, for CPU and RSS (None: not ours to watch)
    sent_extra: int = 0  # probe requests, counted for the usage check


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def system_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine (all cores), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell (default 1)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per cell; the table shows the median (default 2)")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated (default 1,16,64)")
    parser.add_argument("--modes", default="nonstream,stream", help="nonstream,stream")
    parser.add_argument(
        "--targets",
        default="direct,floor,omixa",
        help=f"comma-separated subset of {','.join(ALL_TARGETS)} (default direct,floor,omixa; --full adds floor-httpx)",
    )
    parser.add_argument("--compare", metavar="URL", help="another OpenAI-compatible gateway, already running")
    parser.add_argument("--compare-key", default="", help="bearer key for --compare")
    parser.add_argument("--compare-model", default=BENCH_MODEL, help="model name for --compare")
    parser.add_argument("--compare-name", default="compare", help="label for --compare in the table")
    parser.add_argument("--compare-pid", type=int, help="pid of the compared gateway (to report its CPU and RSS)")
    parser.add_argument("--mock-port", type=int, default=0, help="fixed port for the mock upstream (default: free)")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of sustained load on Omixa for RSS (0: off)")
    parser.add_argument("--full", action="store_true", help="adds floor-httpx and a 60 s soak")
    parser.add_argument("--usage-wait", type=float, default=20.0, help="max seconds to wait for usage events")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in the load generator")
    parser.add_argument(
        "--omixa-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for Omixa's commands and server (repeatable), e.g. OMIXA_DEBUG=0",
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (logs, SQLite DB)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.md", help="where to write the report")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if args.full:
        if "floor-httpx" not in args.targets:
            args.targets.insert(args.targets.index("floor") + 1 if "floor" in args.targets else 0, "floor-httpx")
        args.soak = args.soak or 60.0
    unknown = set(args.targets) - set(ALL_TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if set(args.modes) - {"nonstream", "stream"}:
        parser.error("--modes takes nonstream and/or stream")
    return args


# ---------------------------------------------------------------- Omixa set-up


def omixa_env(tmp: Path, extra: list[str] = ()) -> dict[str, str]:
    import secrets

    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="omixa.settings",
        DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}",
        OMIXA_VAR_DIR=str(tmp / "var"),
        OMIXA_DEBUG="0",  # measured as it runs in production (--omixa-env OMIXA_DEBUG=1 for make run's mode)
        OMIXA_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        OMIXA_ALLOWED_HOSTS="127.0.0.1,localhost",
        OMIXA_SECRET_KEY=secrets.token_urlsafe(48),
        PYTHONUNBUFFERED="1",
    )
    for item in extra:
        key, _, value = item.partition("=")
        env[key.strip()] = value
    return env


def manage(env: dict[str, str], *args: str) -> dict:
    """Run one management command; each prints one JSON object (DESIGN.md contracts)."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stderr.strip()[-2000:]}")
    out = done.stdout.strip()
    if not out:
        return {}
    try:
        return json.loads(out)
    except ValueError:
        return json.loads(out.splitlines()[-1])


def prepare_omixa(tmp: Path, mock_port: int, extra_env: list[str]) -> tuple[dict[str, str], str]:
    env = omixa_env(tmp, extra_env)
    log("omixa: migrate, load_catalog, create_workspace, create_api_key, add_provider_key")
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "load_catalog")
    workspace = manage(env, "create_workspace", "--name", "bench")
    key = manage(env, "create_api_key", "--workspace", workspace["slug"], "--name", "bench")["key"]
    manage(
        env,
        "add_provider_key",
        "--model",
        BENCH_MODEL,
        "--provider",
        "openai",
        "--base-url",
        f"http://127.0.0.1:{mock_port}",
        "--api-key",
        "bench-secret",
        "--deployment",
        BENCH_MODEL,
    )
    return env, key


def probe(target: Target) -> str | None:
    """One non-stream and one stream request; None when both answer 200 as expected."""
    headers = {"Content-Type": "application/json"}
    if target.key:
        headers["Authorization"] = f"Bearer {target.key}"
    for stream in (False, True):
        status, body = http_post(target.url, request_body(target.model, stream), headers, timeout=30)
        target.sent_extra += 1
        if status != 200:
            return f"{'stream' if stream else 'non-stream'} probe answered {status}: {body[:300]!r}"
        if stream and b"[DONE]" not in body:
            return f"stream probe did not end with [DONE]: {body[-300:]!r}"
    return None


def usage_events(db: Path) -> tuple[int, dict[str, int]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        total = con.execute("SELECT count(*) FROM billing_usageevent").fetchone()[0]
        rows = con.execute(
            "SELECT outcome, http_status, stream, count(*) FROM billing_usageevent GROUP BY 1, 2, 3"
        ).fetchall()
    finally:
        con.close()
    return total, {f"{o}/{s}/{'stream' if st else 'json'}": n for o, s, st, n in rows}


def wait_usage(db: Path, expected: int, wait: float) -> dict:
    deadline = time.monotonic() + wait
    last, since = -1, time.monotonic()
    count, breakdown = 0, {}
    while time.monotonic() < deadline:
        try:
            count, breakdown = usage_events(db)
        except sqlite3.Error as exc:
            breakdown = {"error": str(exc)}
        if count == expected:
            break
        if count != last:
            last, since = count, time.monotonic()
        elif count > expected or time.monotonic() - since > max(5.0, wait / 2):
            break
        time.sleep(0.5)
    return {"expected": expected, "count": count, "breakdown": breakdown}


# ---------------------------------------------------------------- load


def run_cell(args, target: Target, mode: str, concurrency: int, mock: Proc, duration: float, warmup: float) -> dict:
    command = python_module(
        "bench.loadgen",
        "--url",
        target.url,
        "--model",
        target.model,
        "--mode",
        mode,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--timeout",
        str(args.timeout),
        "--markers",
    )
    if target.key:
        command += ["--key", target.key]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids = {"server": target.pid, "mock": mock.pid}
    marks: dict[str, dict] = {}
    # The load generator bounds itself (window + per-request timeout); this bounds it from outside too.
    guard = threading.Timer(warmup + duration + args.timeout + 60, proc.kill)
    guard.start()
    assert proc.stderr is not None
    errors: list[str] = []
    try:
        for line in proc.stderr:  # the load generator prints a marker when its window opens and closes
            line = line.strip()
            if line in ("measure-start", "measure-end"):
                marks[line] = {
                    "t": time.monotonic(),
                    "busy": system_busy_seconds(),
                    **{k: cpu_seconds(p) if p else None for k, p in pids.items()},
                }
            elif line:
                errors.append(line)
        out, _ = proc.communicate()
    finally:
        guard.cancel()
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {' '.join(errors)[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(target=target.name, cpu={})
    start, end = marks.get("measure-start"), marks.get("measure-end")
    if start and end:
        wall = end["t"] - start["t"]
        ours = 0.0
        for key in ("server", "mock"):
            if start.get(key) is not None and end.get(key) is not None:
                result["cpu"][key] = 100 * (end[key] - start[key]) / wall
                if key == "server" and target.pid == mock.pid:
                    continue
                ours += end[key] - start[key]
        ours += result["loadgen_cpu_pct"] * wall / 100
        result["cpu"]["other"] = max(0.0, 100 * (end["busy"] - start["busy"] - ours) / wall)
    return result


def soak(args, target: Target, seconds: float) -> dict:
    """Sustained mixed load (half the connections stream) at c=16; the worker's RSS at 10 s and at the end."""
    command = python_module(
        "bench.loadgen",
        "--url",
        target.url,
        "--model",
        target.model,
        "--mode",
        "mixed",
        "--concurrency",
        "16",
        "--duration",
        str(seconds),
        "--warmup",
        "0",
        "--markers",
    )
    if target.key:
        command += ["--key", target.key]
    log(f"soak: {seconds:.0f} s of mixed load at c=16 on {target.name}, sampling RSS of pid {target.pid}")
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(seconds + args.timeout + 60, proc.kill)
    guard.start()
    assert proc.stderr is not None
    # Wait for the window to open, then sample once a second (reads of /proc are cheap).
    opened = False
    for line in proc.stderr:
        if line.strip() == "measure-start":
            opened = True
            break
    start = time.monotonic()
    samples: list[tuple[float, int | None]] = []
    if opened:
        while proc.poll() is None and time.monotonic() - start < seconds + 0.5:
            samples.append((round(time.monotonic() - start, 1), rss_kib(target.pid) if target.pid else None))
            time.sleep(1.0 - ((time.monotonic() - start) % 1.0))
    try:
        out, err = proc.communicate()
    finally:
        guard.cancel()
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-2000:]}
    result["target"] = target.name

    def at(t: float) -> int | None:
        candidates = [kib for when, kib in samples if when <= t + 0.6 and kib]
        return candidates[-1] if candidates else None

    rss10, rss_end = at(10.0), at(seconds)
    result["rss_kib"] = {"at_10s": rss10, "at_end": rss_end, "end_s": seconds, "samples": samples}
    result["rss_change_pct"] = (100.0 * (rss_end - rss10) / rss10) if rss10 and rss_end else None
    return result


# ---------------------------------------------------------------- run


def aggregate(cells: list[dict]) -> dict[tuple[str, str, int], dict]:
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for cell in cells:
        groups.setdefault((cell["target"], cell["mode"], cell["concurrency"]), []).append(cell)
    out = {}
    for key, runs in groups.items():

        def med(field: str, runs=runs) -> float | None:
            values = [r[field] for r in runs if r.get(field) is not None]
            return statistics.median(values) if values else None

        def med_cpu(field: str, runs=runs) -> float | None:
            values = [r["cpu"][field] for r in runs if r.get("cpu", {}).get(field) is not None]
            return statistics.median(values) if values else None

        errors: dict[str, int] = {}
        for r in runs:
            for name, n in r["errors"].items():
                errors[name] = errors.get(name, 0) + n
        out[key] = {
            "target": key[0],
            "mode": key[1],
            "concurrency": key[2],
            "runs": len(runs),
            "rps": med("rps"),
            "p50_ms": med("p50_ms"),
            "p99_ms": med("p99_ms"),
            "ttfc_p50_ms": med("ttfc_p50_ms"),
            "ttfc_p99_ms": med("ttfc_p99_ms"),
            "sent": sum(r["sent"] for r in runs),
            "ok": sum(r["ok"] for r in runs),
            "errors": errors,
            "error_count": sum(errors.values()),
            "cpu_server": med_cpu("server"),
            "cpu_mock": med_cpu("mock"),
            "cpu_loadgen": med("loadgen_cpu_pct"),
            "cpu_other": med_cpu("other"),
            "loadgen_us_per_req": med("loadgen_cpu_us_per_req"),
        }
    return out


def git_head() -> str:
    try:
        return subprocess.run(
            ["git", "log", "-1", "--format=%h %s"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores {model}, Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="omixa-bench-"))
    procs: list[Proc] = []
    targets: list[Target] = []
    notes: list[str] = []
    usage: dict | None = None
    soak_result: dict | None = None
    cells: list[dict] = []
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "commit": git_head(),
        "machine": machine(),
        "options": f"duration {args.duration:g} s + warm-up {args.warmup:g} s per cell, median of {args.repeats}, "
        f"concurrency {','.join(map(str, args.concurrency))}",
    }
    try:
        mock_port = args.mock_port or free_port()
        mock = Proc("mock", python_module("bench.mock_upstream", "--port", str(mock_port)), mock_port, tmp).start()
        procs.append(mock)
        log(f"mock upstream on :{mock_port} (pid {mock.pid}); temp dir {tmp}")
        for name in args.targets:
            if name == "direct":
                targets.append(
                    Target("direct", chat_url(f"http://127.0.0.1:{mock_port}"), "bench-secret", pid=mock.pid)
                )
            elif name in ("floor", "floor-httpx", "floor-lean"):
                port = free_port()
                client = "httpx" if name == "floor-httpx" else "aiohttp"
                handler = "lean" if name == "floor-lean" else "stock"
                floor = Proc(
                    name,
                    python_module(
                        "bench.floor",
                        "--port",
                        str(port),
                        "--upstream",
                        f"http://127.0.0.1:{mock_port}",
                        "--client",
                        client,
                        "--handler",
                        handler,
                    ),
                    port,
                    tmp,
                ).start()
                procs.append(floor)
                targets.append(Target(name, chat_url(f"http://127.0.0.1:{port}"), pid=floor.pid))
            elif name == "omixa":
                try:
                    env, key = prepare_omixa(tmp, mock_port, args.omixa_env)
                    port = free_port()
                    server = Proc(
                        "omixa",
                        omixa_command(port),
                        port,
                        tmp,
                        env=env,
                    ).start(timeout=60)
                    procs.append(server)
                    target = Target("omixa", f"http://127.0.0.1:{port}/api/v1/chat/completions", key, pid=server.pid)
                    problem = probe(target)
                    if problem:
                        notes.append(f"omixa skipped: {problem}")
                        log(f"omixa does not answer yet: {problem}\n{server.tail(10)}")
                    else:
                        targets.append(target)
                        log(f"omixa on :{port} (pid {server.pid}) answers")
                except (RuntimeError, KeyError, ValueError, subprocess.SubprocessError) as exc:
                    notes.append(f"omixa skipped: {str(exc).splitlines()[0]}")
                    log(f"omixa could not be started: {exc}")
        if args.compare:
            target = Target(
                args.compare_name, chat_url(args.compare), args.compare_key, args.compare_model, pid=args.compare_pid
            )
            problem = probe(target)
            if problem:
                notes.append(f"{args.compare_name} ({args.compare}) skipped: {problem}")
                log(f"{args.compare_name} does not answer: {problem}")
            else:
                targets.append(target)

        total = len(args.modes) * len(args.concurrency) * args.repeats * len(targets)
        log(f"{total} cells of {args.warmup + args.duration:g} s: ~{total * (args.warmup + args.duration + 0.5):.0f} s")
        for mode in args.modes:
            for concurrency in args.concurrency:
                for rep in range(args.repeats):
                    for target in targets:
                        cell = run_cell(args, target, mode, concurrency, mock, args.duration, args.warmup)
                        cell["rep"] = rep
                        cells.append(cell)
                        log(
                            f"{target.name:>12} {mode:>9} c={concurrency:<3} {cell['rps']:9.1f} req/s  "
                            f"p50 {report.ms(cell['p50_ms'])}  p99 {report.ms(cell['p99_ms'])}  "
                            f"ttfc {report.ms(cell['ttfc_p50_ms'])}  errors {cell['error_count']}"
                        )
        omixa = next((t for t in targets if t.name == "omixa"), None)
        if args.soak and omixa is not None:
            soak_result = soak(args, omixa, args.soak)
        elif args.soak:
            notes.append("soak skipped: omixa is not among the answering targets")
        if omixa is not None:
            sent = omixa.sent_extra + sum(c["sent"] for c in cells if c["target"] == "omixa")
            sent += soak_result.get("sent", 0) if soak_result else 0
            log(f"usage check: waiting up to {args.usage_wait:g} s for {sent} usage events")
            usage = wait_usage(tmp / "bench.sqlite3", sent, args.usage_wait)
            if usage["count"] != sent:
                server = next(p for p in procs if p.name == "omixa")
                server.stop(timeout=30)  # a graceful stop flushes the usage writer
                after = wait_usage(tmp / "bench.sqlite3", sent, 5.0)
                usage["after_shutdown"] = after["count"]
                usage["breakdown"] = after["breakdown"]
    finally:
        for proc in reversed(procs):
            proc.stop()
    meta["elapsed_s"] = round(time.monotonic() - began)
    summary = aggregate(cells)
    text = report.render(meta, summary, usage, soak_result, notes, [t.name for t in targets], args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "cells": cells, "usage": usage, "soak": soak_result, "notes": notes}, indent=1)
    )
    log(f"wrote {args.out} and {args.out.with_suffix('.json').name}")
    if args.keep_temp:
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    errors = sum(c["error_count"] for c in cells)
    return 1 if errors or (usage and usage["count"] != usage["expected"]) else 0


if __name__ == "__main__":
    sys.exit(main())
