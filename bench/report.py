"""The markdown report of a bench run: the table, the comparison with the peers, the targets."""

from __future__ import annotations

# Targets from issue 4 (Omixa with authentication, validation, routing and usage recording on).
ADDED_P50_MS = 1.5
ADDED_P99_MS = 5.0
ADDED_TTFC_P50_MS = 2.0
FLOOR_SHARE = 0.60
VS_COMPARE_NONSTREAM = 5.0
VS_COMPARE_STREAM = 15.0
RSS_FLAT_PCT = 10.0
BUSY_OTHER_PCT = 20.0  # median CPU of everything outside the bench above which a run is flagged as disturbed


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def signed_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f} ms"


def num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**MISSED**")


def _get(summary: dict, target: str, mode: str, c: int, field: str) -> float | None:
    cell = summary.get((target, mode, c))
    return None if cell is None else cell.get(field)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def render(meta: dict, summary: dict, usage: dict | None, soak: dict | None, notes: list[str], names, args) -> str:
    out = [
        "# Omixa bench",
        "",
        f"{meta['when']} · commit `{meta['commit']}` · {meta['machine']} · {meta['options']} · "
        f"run took {meta.get('elapsed_s', '?')} s",
        "",
        "All targets share this machine with the mock upstream and the load generator; req/s counts answers",
        "completed in the window, latency is send → last byte, TTFC is send → first SSE `data:` chunk. CPU",
        "columns are % of one core over the window: the target's server, the mock, the load generator, and",
        "everything else on the machine (other work disturbs a run: compare it across rows).",
        "",
    ]
    rows = []
    for mode in args.modes:
        for c in args.concurrency:
            for name in names:
                cell = summary.get((name, mode, c))
                if cell is None:
                    continue
                errors = str(cell["error_count"]) + (
                    " (" + ", ".join(f"{k} {v}" for k, v in sorted(cell["errors"].items())) + ")"
                    if cell["errors"]
                    else ""
                )
                rows.append(
                    [
                        name,
                        mode,
                        str(c),
                        num(cell["rps"]),
                        ms(cell["p50_ms"]),
                        ms(cell["p99_ms"]),
                        ms(cell["ttfc_p50_ms"]),
                        ms(cell["ttfc_p99_ms"]),
                        f"{errors} / {cell['sent']:,}",
                        pct(cell["cpu_server"]) if name != "direct" else "(mock)",
                        pct(cell["cpu_mock"]),
                        pct(cell["cpu_loadgen"]),
                        pct(cell["cpu_other"]),
                    ]
                )
    out.append(
        table(
            [
                "target",
                "mode",
                "c",
                "req/s",
                "p50 ms",
                "p99 ms",
                "TTFC p50 ms",
                "TTFC p99 ms",
                "errors / sent",
                "CPU server",
                "CPU mock",
                "CPU loadgen",
                "CPU other",
            ],
            rows,
            "lllrrrrrrrrrr",
        )
    )

    # The peers side by side, in the shape.
    floor = "floor" if "floor" in names else None
    compare_name = args.compare_name if args.compare and args.compare_name in names else None
    peer_rows = []
    for name in names:
        if name == "direct":
            continue
        row = [
            name,
            signed_ms(
                _diff(_get(summary, name, "nonstream", 1, "p50_ms"), _get(summary, "direct", "nonstream", 1, "p50_ms"))
            ),
            signed_ms(
                _diff(_get(summary, name, "nonstream", 1, "p99_ms"), _get(summary, "direct", "nonstream", 1, "p99_ms"))
            ),
            signed_ms(
                _diff(
                    _get(summary, name, "stream", 1, "ttfc_p50_ms"), _get(summary, "direct", "stream", 1, "ttfc_p50_ms")
                )
            ),
        ]
        for c in (16, 64):
            for mode in ("nonstream", "stream"):
                rps = _get(summary, name, mode, c, "rps")
                share = _ratio(rps, _get(summary, floor, mode, c, "rps")) if floor else None
                row.append(num(rps) + (f" ({share:.0%})" if share is not None and name != floor else ""))
        peer_rows.append(row)
    if peer_rows:
        out += [
            "",
            "## Side by side (added = minus the direct call to the mock, same run; % = share of the floor's req/s)",
            "",
            table(
                [
                    "setup",
                    "c=1 p50 added",
                    "c=1 p99 added",
                    "c=1 stream TTFC p50 added",
                    "c=16 non-stream req/s",
                    "c=16 stream req/s",
                    "c=64 non-stream req/s",
                    "c=64 stream req/s",
                ],
                peer_rows,
            ),
        ]

    # The targets, for Omixa.
    if "omixa" in names:
        checks = []

        def add(what: str, value: str, target: str, ok: bool | None) -> None:
            checks.append([what, value, target, verdict(ok)])

        d50 = _diff(_get(summary, "omixa", "nonstream", 1, "p50_ms"), _get(summary, "direct", "nonstream", 1, "p50_ms"))
        d99 = _diff(_get(summary, "omixa", "nonstream", 1, "p99_ms"), _get(summary, "direct", "nonstream", 1, "p99_ms"))
        dttfc = _diff(
            _get(summary, "omixa", "stream", 1, "ttfc_p50_ms"), _get(summary, "direct", "stream", 1, "ttfc_p50_ms")
        )
        add(
            "added latency c=1 p50",
            signed_ms(d50),
            f"≤ {ADDED_P50_MS} ms",
            None if d50 is None else d50 <= ADDED_P50_MS,
        )
        add(
            "added latency c=1 p99",
            signed_ms(d99),
            f"≤ {ADDED_P99_MS} ms",
            None if d99 is None else d99 <= ADDED_P99_MS,
        )
        add(
            "added stream TTFC c=1 p50",
            signed_ms(dttfc),
            f"≤ {ADDED_TTFC_P50_MS} ms",
            None if dttfc is None else dttfc <= ADDED_TTFC_P50_MS,
        )
        for c in (16, 64):
            for mode in ("nonstream", "stream"):
                share = (
                    _ratio(_get(summary, "omixa", mode, c, "rps"), _get(summary, floor, mode, c, "rps"))
                    if floor
                    else None
                )
                add(
                    f"req/s c={c} {mode} vs floor",
                    "-" if share is None else f"{100 * share:.1f}%",
                    f"≥ {FLOOR_SHARE:.0%}",
                    None if share is None else share >= FLOOR_SHARE,
                )
        if compare_name:
            for c in (16, 64):
                for mode, need in (("nonstream", VS_COMPARE_NONSTREAM), ("stream", VS_COMPARE_STREAM)):
                    times = _ratio(_get(summary, "omixa", mode, c, "rps"), _get(summary, compare_name, mode, c, "rps"))
                    add(
                        f"req/s c={c} {mode} vs {compare_name}",
                        "-" if times is None else f"x{times:.1f}",
                        f"≥ x{need:g}" if c == 16 else "(info)",
                        (None if times is None else times >= need) if c == 16 else None,
                    )
        errors = sum(cell["error_count"] for (name, _, _), cell in summary.items() if name == "omixa")
        sent = sum(cell["sent"] for (name, _, _), cell in summary.items() if name == "omixa")
        if soak is not None:
            errors += soak.get("error_count", 0)
            sent += soak.get("sent", 0)
        add("errors (non-200, broken streams, timeouts)", f"{errors} of {sent:,}", "0", errors == 0)
        if usage is not None:
            value = f"{usage['count']:,} events for {usage['expected']:,} requests"
            if "after_shutdown" in usage:
                value += f" ({usage['after_shutdown']:,} after a graceful stop)"
            add("usage events = requests sent", value, "equal", usage["count"] == usage["expected"])
        if soak is not None:
            rss = soak.get("rss_kib", {})
            change = soak.get("rss_change_pct")
            at10, at_end = rss.get("at_10s"), rss.get("at_end")
            add(
                f"worker RSS 10 s → {rss.get('end_s', 0):.0f} s of load",
                f"{num(at10 / 1024 if at10 else None, 1)} → {num(at_end / 1024 if at_end else None, 1)} MiB ({'-' if change is None else f'{change:+.1f}%'})",
                f"±{RSS_FLAT_PCT:g}%",
                None if change is None else abs(change) <= RSS_FLAT_PCT,
            )
        else:
            add("worker RSS flat under load", "not measured (use --soak 60 or --full)", f"±{RSS_FLAT_PCT:g}%", None)
        out += ["", "## Targets (issue 4)", "", table(["what", "measured", "target", "verdict"], checks, "lrrl")]

    extra = []
    if usage is not None and usage.get("breakdown"):
        extra.append(
            "usage events by outcome/status/kind: "
            + ", ".join(f"`{k}` {v:,}" for k, v in sorted(usage["breakdown"].items()))
        )
    if soak is not None:
        extra.append(
            f"soak: {num(soak.get('rps'))} req/s mixed at c=16, errors {soak.get('error_count', '?')}, "
            f"sent {soak.get('sent', 0):,}"
        )
    costs = [cell["loadgen_us_per_req"] for cell in summary.values() if cell.get("loadgen_us_per_req")]
    busiest = max(
        (cell["cpu_loadgen"] for cell in summary.values() if cell["target"] != "direct" and cell.get("cpu_loadgen")),
        default=None,
    )
    if costs:
        extra.append(
            f"load generator (raw asyncio + httptools, one process): {min(costs):.0f}-{max(costs):.0f} µs of CPU "
            "per request (the most when the target is slow and every answer wakes it up)"
            + (f"; at most {busiest:.0f}% of one core in any gateway cell" if busiest is not None else "")
        )
    others = sorted(cell["cpu_other"] for cell in summary.values() if cell.get("cpu_other") is not None)
    if others and others[len(others) // 2] > BUSY_OTHER_PCT:
        extra.append(
            f"**the machine was busy with other work during this run** (median {others[len(others) // 2]:.0f}% "
            "of a core outside the bench): every target had less CPU than on a quiet machine; the figures are "
            "noisy and pessimistic, compare targets within a row group rather than with other runs"
        )
    extra += notes
    if extra:
        out += ["", "## Notes", ""] + [f"- {line}" for line in extra]
    return "\n".join(out) + "\n"
