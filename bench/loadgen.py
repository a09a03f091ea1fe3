"""Closed-loop HTTP load generator for OpenAI-compatible chat completions.

Runs in its own process (``python -m bench.loadgen ...``) and prints one JSON object. ``C`` connections
are opened and kept alive; each sends a request, waits for the whole answer, and sends the next one
until the duration is over (after an unmeasured warm-up). Every request sent is counted, including
warm-up and failed ones, so the gateway's usage events can be reconciled against ``sent``.

The default engine is a raw asyncio protocol on uvloop with httptools' response parser: a request costs
it a few tens of microseconds of CPU, several times less than an aiohttp client (``--engine aiohttp``
is kept to show that), so on a 2-core machine shared with the gateway and the mock it takes the least
CPU away from the thing measured. It reports its own CPU use so a run can show it was not the
bottleneck.

Measured per request: latency (send → last byte) and, for streams, time to first chunk (send → the
first body bytes carrying an SSE ``data:`` event). Errors: non-200 statuses, connection failures,
timeouts, and broken streams (a 200 whose body does not end with ``data: [DONE]`` or carries an
``"error"`` event; a non-stream 200 without ``"choices"``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools
import orjson

PROMPT = [
    {"role": "system", "content": "You are a concise assistant. Answer in one short sentence."},
    {"role": "user", "content": "Say hello and tell me what a benchmark measures, briefly."},
]


def request_body(model: str, stream: bool) -> bytes:
    body: dict = {"model": model, "messages": PROMPT, "max_tokens": 64}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def chat_url(base: str) -> str:
    """Accept a full ``.../chat/completions`` URL, a ``.../v1`` base, or a bare origin (``/v1`` added)."""
    base = base.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (p in 0..100)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Stats:
    sent: int = 0  # every request written, warm-up and failures included
    measured: int = 0  # requests started inside the measured window (answered or not)
    ok: int = 0
    errors: Counter = field(default_factory=Counter)
    latencies: list[int] = field(default_factory=list)  # ns, measured OK requests
    ttfc: list[int] = field(default_factory=list)  # ns, measured OK streams
    events: Counter = field(default_factory=Counter)  # SSE data events per stream → count
    last_end: float = 0.0


def check(stream: bool, status: int, body: bytes) -> str | None:
    """The error class of one answer, or None when it is a good one."""
    if status != 200:
        return f"http_{status}"
    if stream:
        if not body.rstrip().endswith(b"data: [DONE]") or b'"error":' in body:
            return "broken_stream"
    elif b'"choices"' not in body:
        return "bad_body"
    return None


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that carries one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.body: list[bytes] = []
        self.first: float = 0.0
        self.started: float = 0.0
        self.status = 0
        self.closed = False
        self.loop = asyncio.get_running_loop()

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))
            self.transport.abort()

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._fail(ConnectionError("connection lost"))

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if not self.first and b"data:" in body:
            self.first = time.perf_counter()
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self.parser.should_keep_alive())

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, payload: bytes) -> asyncio.Future:
        self.body = []
        self.first = 0.0
        self.status = 0
        self.waiter = self.loop.create_future()
        self.started = time.perf_counter()
        self.transport.write(payload)
        return self.waiter


async def run_raw(args, stats: Stats, measure_from: float, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    url = urlsplit(args.url)
    host, port = url.hostname, url.port or 80
    path = url.path + (f"?{url.query}" if url.query else "")
    payloads = {}
    for stream in (False, True):
        body = request_body(args.model, stream)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nUser-Agent: omixa-bench/1\r\n"
            f"Accept: {'text/event-stream' if stream else 'application/json'}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + (f"Authorization: Bearer {args.key}\r\n" if args.key else "")
            + "\r\n"
        )
        payloads[stream] = head.encode() + body
    connections: list[Connection] = []

    async def watchdog() -> None:
        # One timer for all connections (cheaper than a timeout per request): abort stuck requests.
        while True:
            await asyncio.sleep(0.25)
            now = time.perf_counter()
            for conn in connections:
                if conn.waiter is not None and now - conn.started > args.timeout:
                    conn._fail(TimeoutError("request timed out"))
                    if conn.transport is not None:
                        conn.transport.abort()

    async def worker(index: int) -> None:
        stream = args.mode == "stream" or (args.mode == "mixed" and index % 2 == 1)
        payload = payloads[stream]
        conn: Connection | None = None
        while time.perf_counter() < deadline:
            if conn is None or conn.closed:
                try:
                    _, conn = await asyncio.wait_for(loop.create_connection(Connection, host, port), args.timeout)
                except (OSError, TimeoutError):
                    stats.errors["connect"] += 1
                    conn = None
                    await asyncio.sleep(0.05)
                    continue
                connections.append(conn)
            stats.sent += 1
            waiter = conn.send(payload)
            started = conn.started
            measured = started >= measure_from
            if measured:
                stats.measured += 1
            try:
                keep_alive = await waiter
            except TimeoutError:
                stats.errors["timeout"] += 1
                conn = None
                continue
            except ConnectionError:
                stats.errors["connection"] += 1
                conn = None
                continue
            end = time.perf_counter()
            problem = check(stream, conn.status, b"".join(conn.body))
            if problem:
                stats.errors[problem] += 1
            elif measured:
                stats.ok += 1
                stats.latencies.append(int((end - started) * 1e9))
                if stream:
                    stats.ttfc.append(int(((conn.first or end) - started) * 1e9))
                    stats.events[sum(part.count(b"data:") for part in conn.body)] += 1
                stats.last_end = max(stats.last_end, end)
            if not keep_alive:
                conn.transport.close()
                conn = None
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    dog = asyncio.create_task(watchdog())
    try:
        await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    finally:
        dog.cancel()


async def run_aiohttp(args, stats: Stats, measure_from: float, deadline: float) -> None:
    """The same load through an aiohttp client (kept to compare the engines' own cost)."""
    import aiohttp

    headers = {"Content-Type": "application/json", "User-Agent": "omixa-bench/1"}
    if args.key:
        headers["Authorization"] = f"Bearer {args.key}"
    bodies = {s: request_body(args.model, s) for s in (False, True)}
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:

        async def worker(index: int) -> None:
            stream = args.mode == "stream" or (args.mode == "mixed" and index % 2 == 1)
            data = bodies[stream]
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                measured = started >= measure_from
                stats.sent += 1
                stats.measured += measured
                first = 0.0
                try:
                    async with session.post(args.url, data=data) as response:
                        parts = []
                        async for part in response.content.iter_any():
                            if not first and b"data:" in part:
                                first = time.perf_counter()
                            parts.append(part)
                        status = response.status
                except TimeoutError:
                    stats.errors["timeout"] += 1
                    continue
                except aiohttp.ClientError:
                    stats.errors["connection"] += 1
                    await asyncio.sleep(0.01)
                    continue
                end = time.perf_counter()
                problem = check(stream, status, b"".join(parts))
                if problem:
                    stats.errors[problem] += 1
                elif measured:
                    stats.ok += 1
                    stats.latencies.append(int((end - started) * 1e9))
                    if stream:
                        stats.ttfc.append(int(((first or end) - started) * 1e9))
                        stats.events[sum(p.count(b"data:") for p in parts)] += 1
                    stats.last_end = max(stats.last_end, end)

        await asyncio.gather(*(worker(i) for i in range(args.concurrency)))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(args) -> dict:
    stats = Stats()
    start = time.perf_counter()
    measure_from = start + args.warmup
    deadline = measure_from + args.duration
    cpu_marks: dict[str, float] = {}

    async def mark_cpu() -> None:
        # With --markers, stderr says when the window opens and closes, so a caller can sample the
        # servers' CPU over the same window.
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        cpu_marks["start"] = _cpu()
        if args.markers:
            print("measure-start", file=sys.stderr, flush=True)
        await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
        cpu_marks["end"] = _cpu()
        if args.markers:
            print("measure-end", file=sys.stderr, flush=True)

    marker = asyncio.create_task(mark_cpu())
    engine = run_aiohttp if args.engine == "aiohttp" else run_raw
    await engine(args, stats, measure_from, deadline)
    await marker
    window = max(1e-9, (stats.last_end or deadline) - measure_from)
    lat = sorted(v / 1e6 for v in stats.latencies)
    ttfc = sorted(v / 1e6 for v in stats.ttfc)
    cpu = cpu_marks.get("end", _cpu()) - cpu_marks.get("start", 0.0)
    return {
        "url": args.url,
        "mode": args.mode,
        "engine": args.engine,
        "concurrency": args.concurrency,
        "duration": args.duration,
        "sent": stats.sent,
        "measured": stats.measured,
        "ok": stats.ok,
        "errors": dict(stats.errors),
        "error_count": sum(stats.errors.values()),
        "rps": stats.ok / window,
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "ttfc_p50_ms": percentile(ttfc, 50),
        "ttfc_p99_ms": percentile(ttfc, 99),
        "stream_events": {str(k): v for k, v in sorted(stats.events.items())},
        "loadgen_cpu_pct": 100.0 * cpu / args.duration,
        "loadgen_cpu_us_per_req": (1e6 * cpu / stats.ok) if stats.ok else None,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Closed-loop load generator for chat completions.")
    parser.add_argument("--url", required=True, help="chat completions URL (or a base; /v1/chat/completions added)")
    parser.add_argument("--key", default="", help="bearer token")
    parser.add_argument("--model", default="gpt-4.1-mini")
    parser.add_argument("--mode", choices=("nonstream", "stream", "mixed"), default="nonstream")
    parser.add_argument("--concurrency", "-c", type=int, default=16)
    parser.add_argument("--duration", "-d", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before the window")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    parser.add_argument("--engine", choices=("raw", "aiohttp"), default="raw")
    parser.add_argument("--markers", action="store_true", help="print measure-start/measure-end on stderr")
    args = parser.parse_args(argv)
    args.url = chat_url(args.url)
    if urlsplit(args.url).scheme != "http":
        parser.error("only http:// URLs are supported")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import uvloop

    result = uvloop.run(run(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
