"""The markdown summary of a sweep: its notes, one line per point, and the baseline's table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The functions a point prices by their own memory (`<role>_memory_mb` in its row).
MEMORY_ROLES = ("worker", "scheduler", "finalize")


def summary_markdown(
    rows: Sequence[dict[str, Any]], base_rows: Sequence[dict[str, Any]], *, mode: str, notes: Sequence[str]
) -> str:
    """The headline table (one line per point) and the baseline table, as markdown."""
    lines = [f"# Load test results ({mode})", ""]
    lines += [f"- {note}" for note in notes]
    lines += ["", *point_table(rows)]
    lines += [
        "",
        "Baseline (one process, pages in sequence, 0.5 s pause between pages whatever the limit, 60 s "
        "sleep on a 429, run to its end unless sampled (then projected from its time per page); cost at "
        "the memory it would be given (MB), one Lambda invocation; the points' x baseline prices its time at "
        "their worker's memory instead):",
        "",
        "| latency s | limit/min | vulnerabilities | status | 429s | s/page (real) | wall s (real) | "
        "finishes in 15 min | max pages in 15 min | max vulnerabilities in 15 min | MB | $/1k pages |",
        "|" + " ---: |" * 12,
    ]
    for b in base_rows:
        lines.append(
            f"| {b['latency_s']:g} | {b['rate_limit']} | {b['vulnerabilities']} | {_sampled(b)} | "
            f"{b.get('throttled_429', '-')} | {b['per_page_real_s']:g} | {b['wall_real_s']:g} | "
            f"{'yes' if b['finishes_in_15min'] else 'no'} | "
            f"{b['max_pages_in_15min']} | {b['max_vulnerabilities_in_15min']} | "
            f"{b.get('memory_mb', '-')} | {b['cost_per_1000_pages_usd']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def point_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The headline table's lines, one per point: time against the bound, the limit, cost against the
    floor and the baseline at the worker's memory, invocations against their timeout."""
    lines = [
        "| point | W | RIF | latency s | limit/min | cursor | pages (min) | requests/pages | wall s (real) | "
        "bound s | time/bound | at scale | fetch/bound | pages/min | 429s | max in 60 s (limit) | "
        "$ / 1k pages | MB worker / scheduler / Finalize | x floor | MB/worker ≤ | x faster than baseline | "
        "x baseline (equal memory) | worker p50 / max / timeout s (real) | timed out |",
        "| --- |" + " ---: |" * 23,
    ]
    for r in rows:
        memory = " / ".join(_maybe(r.get(f"{role}_memory_mb")) for role in MEMORY_ROLES)
        lines.append(
            f"| {_verdict(r)} | {r['concurrency']} | "
            f"{r['ranges_in_flight']} | {r['latency_s']:g} | {r['rate_limit']} | {r['cursor_style']} | "
            f"{r['pages']} ({r['minimum_pages']}) | {_maybe(r.get('requests_over_pages'))} | "
            f"{r['wall_real_s']:g} | {r['bound_real_s']:g} | "
            f"{r['time_over_bound']:.2f} | {r['time_over_bound_at_scale']:.2f} | "
            f"{r['fetch_over_bound']:.2f} | {r['pages_per_min_real']:g} | "
            f"{r['throttled_429']} | {r['max_requests_in_60s']} ({r['simulated_limit']}) | "
            f"{r['cost_per_1000_pages_usd']:.4f} | {memory} | {_maybe(r.get('cost_over_floor'))} | "
            f"{r['peak_mem_mb_per_worker_upper']:g} | {_maybe(r['speedup_vs_baseline'])} | "
            f"{_maybe(r.get('cost_vs_baseline_equal_memory'))} | "
            f"{_maybe(r.get('worker_p50_real_s'))} / {_maybe(r.get('worker_max_real_s'))} / "
            f"{_maybe(r.get('worker_timeout_real_s'))} | {_maybe(r.get('timed_out_invocations'))} |"
        )
    return lines


def _verdict(r: Mapping[str, Any]) -> str:
    """✓ for a point that passed, else ✗ and why (rows written before verdicts: the run's status)."""
    if r.get("verdict", "passed" if r["status"] == "succeeded" else "failed") == "passed":
        return "✓"
    return f"✗ {r.get('failed_because') or r['status']}"


def _sampled(b: dict[str, Any]) -> str:
    if b["status"] == "sampled":
        return f"sampled {b['pages']} pages, projected"
    return str(b["status"])


def _maybe(value: Any) -> str:
    return "-" if value is None else f"{value:g}"
