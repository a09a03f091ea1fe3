"""Smoke test of bench/: the mock upstream, the bare-Django floor and the load generator work together.

A few seconds at c=2, never the full bench (DESIGN.md: benchmarks never run in `make test`), and no
assertion on speed: only that answers are complete, counted, and that stream TTFC is measured.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from bench import loadgen, mock_upstream
from bench.procs import Proc, free_port, http_post, python_module


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    logs = tmp_path_factory.mktemp("bench-smoke")
    mock_port, floor_port = free_port(), free_port()
    mock = Proc("mock", python_module("bench.mock_upstream", "--port", str(mock_port)), mock_port, logs).start()
    try:
        floor = Proc(
            "floor",
            python_module("bench.floor", "--port", str(floor_port), "--upstream", f"http://127.0.0.1:{mock_port}"),
            floor_port,
            logs,
        ).start()
    except Exception:
        mock.stop()
        raise
    yield {"direct": f"http://127.0.0.1:{mock_port}", "floor": f"http://127.0.0.1:{floor_port}"}
    floor.stop()
    mock.stop()


def _load(url: str, mode: str) -> dict:
    args = loadgen.parse_args(["--url", url, "--mode", mode, "-c", "2", "--duration", "0.5", "--warmup", "0.1"])
    return asyncio.run(loadgen.run(args))


@pytest.mark.parametrize("target", ["direct", "floor"])
@pytest.mark.parametrize("mode", ["nonstream", "stream"])
def test_loadgen_against_mock_and_floor_has_no_errors(servers, target, mode):
    result = _load(servers[target], mode)
    assert result["error_count"] == 0, result["errors"]
    assert result["ok"] > 0
    assert result["sent"] >= result["measured"] >= result["ok"]
    assert result["p50_ms"] is not None and result["p99_ms"] >= result["p50_ms"]
    if mode == "stream":
        assert result["ttfc_p50_ms"] is not None and result["ttfc_p50_ms"] <= result["p99_ms"]
        # role chunk + 20 content chunks + finish + usage + [DONE], passed through unchanged by the floor
        assert result["stream_events"] == {"24": result["ok"]}
    else:
        assert result["ttfc_p50_ms"] is None


def test_mock_answers_openai_shapes_on_both_paths(servers):
    status, body = http_post(
        servers["direct"] + "/openai/v1/chat/completions?api-version=preview",
        loadgen.request_body("gpt-4.1-mini", stream=False),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    answer = orjson.loads(body)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == mock_upstream.ANSWER
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    status, body = http_post(
        servers["direct"] + "/v1/chat/completions",
        loadgen.request_body("gpt-4.1-mini", stream=True),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    events = [line[6:] for line in body.decode().split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == mock_upstream.ANSWER
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 20


def test_stream_without_include_usage_has_no_usage_chunk():
    events = mock_upstream.stream_events("m", 10, include_usage=False)
    assert len(events) == 1 + 20 + 1 + 1
    assert all(b'"usage"' not in e for e in events)


def test_loadgen_classifies_answers():
    assert loadgen.check(False, 200, b'{"choices":[]}') is None
    assert loadgen.check(False, 502, b"{}") == "http_502"
    assert loadgen.check(True, 200, b"data: {}\n\ndata: [DONE]\n\n") is None
    assert loadgen.check(True, 200, b"data: {}\n\n") == "broken_stream"
    assert loadgen.check(True, 200, b'data: {"error": {}}\n\ndata: [DONE]\n\n') == "broken_stream"
    assert loadgen.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert loadgen.percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert loadgen.chat_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert loadgen.chat_url("http://h:1/api/v1/") == "http://h:1/api/v1/chat/completions"


def test_report_computes_the_ratios_the_targets_need():
    from types import SimpleNamespace

    from bench import report
    from bench.__main__ import aggregate

    def cell(target, mode, c, rps, p50, p99, ttfc=None):
        return {
            "target": target,
            "mode": mode,
            "concurrency": c,
            "rps": rps,
            "p50_ms": p50,
            "p99_ms": p99,
            "ttfc_p50_ms": ttfc,
            "ttfc_p99_ms": ttfc,
            "sent": 10,
            "ok": 10,
            "errors": {},
            "error_count": 0,
            "loadgen_cpu_pct": 2.0,
            "loadgen_cpu_us_per_req": 20.0,
            "cpu": {"server": 90.0, "mock": 3.0, "other": 1.0},
        }

    cells = []
    for target, rps, added in (("direct", 10000, 0.0), ("floor", 1000, 0.8), ("omixa", 700, 1.2)):
        for mode in ("nonstream", "stream"):
            for c in (1, 16, 64):
                ttfc = 0.1 + added if mode == "stream" else None
                cells.append(cell(target, mode, c, rps, 0.1 + added, 0.3 + added, ttfc))
    args = SimpleNamespace(modes=["nonstream", "stream"], concurrency=[1, 16, 64], compare=None, compare_name="x")
    usage = {"expected": 181, "count": 181, "breakdown": {}}
    text = report.render(
        {"when": "now", "commit": "abc", "machine": "m", "options": "o"},
        aggregate(cells),
        usage,
        None,
        [],
        ["direct", "floor", "omixa"],
        args,
    )
    assert "| omixa | +1.20 ms | +1.20 ms | +1.20 ms | 700 (70%) |" in text
    assert "| req/s c=16 nonstream vs floor | 70.0% | ≥ 60% | **met** |" in text
    assert "| usage events = requests sent | 181 events for 181 requests | equal | **met** |" in text
    assert "MISSED" not in text
