"""Writing a sweep's results: CSV and JSON of every point, a markdown summary (summary.py) and PNG plots.

matplotlib is imported only by `plot` (the `loadtest` extra); nothing here is in the Lambda package.
"""

from __future__ import annotations

import csv
import json
import platform
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loadtest.baseline import MEMORY_MB, BaselineResult, baseline_cost
from loadtest.embedded import PointResult
from loadtest.points import Point
from loadtest.pricing import floor_cost, per_thousand_pages
from loadtest.summary import MEMORY_ROLES, point_table, summary_markdown

# A point's detail in points.json that its CSV row leaves out.
_NESTED = ("aws_requests", "extra")


def baseline_key(point: Point) -> tuple[float, int, int, float]:
    """Points share a baseline when its inputs match: latency, limit, size and scale."""
    return (point.latency_s, point.rate_limit, point.vulnerabilities, point.time_scale)


def row(result: PointResult, baseline: BaselineResult | None) -> dict[str, Any]:
    """One flat CSV row for a point (see the README's column list)."""
    p = result.point
    wall_real = result.wall_real_s
    worker, scheduler = result.timing_real("worker"), result.timing_real("scheduler")
    out: dict[str, Any] = {
        "name": p.name,
        "status": result.status,
        # Failed: the run did not succeed, or an invocation outlived its timeout (killed, as in Lambda).
        "verdict": "passed" if result.passed else "failed",
        "failed_because": "; ".join(result.failures),
        "concurrency": p.concurrency,
        "ranges_in_flight": p.ranges_in_flight,
        "latency_s": p.latency_s,
        "rate_limit": p.rate_limit,
        "configured_limit": p.configured_limit or p.rate_limit,
        "cursor_style": p.cursor_style,
        "page_budget": p.page_budget,
        "vulnerabilities": p.vulnerabilities,
        "time_scale": p.time_scale,
        "minimum_pages": p.minimum_pages,
        "pages": result.pages,
        "requests": result.requests,
        # What the joins by id cost (run/walk.py): Vanta requests (retries aside) over pages.
        "requests_over_pages": round((result.requests - result.retries) / p.minimum_pages, 4),
        "wall_s": round(result.wall_s, 2),
        "wall_real_s": round(wall_real, 1),
        "bound_real_s": round(p.bound_seconds * p.time_scale, 1),
        "time_over_bound": round(result.ratio_real, 3),
        "time_over_bound_at_scale": round(result.ratio, 3),
        "unscaled_s": round(result.unscaled_s, 2),
        "fetch_over_bound": round(result.fetch_ratio, 3),
        "pages_per_min_real": round(result.pages_per_minute_real, 1),
        "throttled_429": result.throttled,
        "throttled_share": round(result.throttled_share, 4),
        "retries": result.retries,
        "max_requests_in_60s": result.max_requests_in_60s,
        "simulated_limit": p.simulated_rate,
        "limit_kept": result.max_requests_in_60s <= p.simulated_rate,
        "invocations": result.invocations,
        # Durations against the timeout, real-equivalent seconds (deadlines scale with the point).
        "timed_out_invocations": result.timed_out_invocations,
        "worker_timeout_real_s": worker["timeout_s"],
        "worker_p50_real_s": worker["p50_s"],
        "worker_max_real_s": worker["max_s"],
        "worker_invocations": worker["invocations"],
        "worker_timed_out": worker["timed_out"],
        "scheduler_timeout_real_s": scheduler["timeout_s"],
        "scheduler_p50_real_s": scheduler["p50_s"],
        "scheduler_max_real_s": scheduler["max_s"],
        "scheduler_timed_out": scheduler["timed_out"],
        "cold_starts": result.cold_starts,
        "peak_concurrency": result.peak_concurrency,
        "worker_ms_median_real": round(result.worker_ms_median * p.time_scale),
        "cost_usd": round(result.cost_usd, 6),
        "cost_per_1000_pages_usd": round(result.cost_per_1000_pages, 5),
        # The memory each function was priced at (None: the point had no such function).
        **{f"{role}_memory_mb": result.memory_mb.get(role) for role in MEMORY_ROLES},
        "peak_mem_mb_per_worker_upper": round(result.peak_rss_growth_mb, 1),
        "baseline_wall_real_s": None,
        "baseline_finishes_15min": None,
        "speedup_vs_baseline": None,
        "cost_vs_baseline": None,
    }
    baseline_real_s = None
    if baseline is not None and baseline.projected_wall_s:
        baseline_real_s = baseline.projected_wall_s * p.time_scale
        out["baseline_wall_real_s"] = round(baseline_real_s, 1)
        out["baseline_finishes_15min"] = baseline.finishes_in_budget
        out["speedup_vs_baseline"] = round(baseline_real_s / wall_real, 2)
        out["cost_vs_baseline"] = round(result.cost_usd / baseline.cost_usd, 2)
    out.update(cost_columns(out, baseline_real_s))
    return out


def cost_columns(r: Mapping[str, Any], baseline_real_s: float | None) -> dict[str, Any]:
    """Row `r`'s cost against the floor (`pricing.floor_cost`: one 256 MB container waiting out the
    bound) and against the baseline's `baseline_real_s` seconds priced at `r`'s worker memory (None
    without a baseline or a known worker memory). Ratios are whole sync over whole sync for the same
    tenant, as `cost_vs_baseline`; the floor per 1,000 pages is over the tenant's minimum pages."""
    floor = floor_cost(r["minimum_pages"], r["rate_limit"])
    worker_mb = r.get("worker_memory_mb")
    baseline = baseline_cost(baseline_real_s, worker_mb) if baseline_real_s and worker_mb else None
    return {
        "floor_cost_per_1000_pages_usd": round(per_thousand_pages(floor, r["minimum_pages"]), 5),
        "cost_over_floor": round(r["cost_usd"] / floor, 2),
        "baseline_cost_equal_memory_usd": None if baseline is None else round(baseline, 6),
        "cost_vs_baseline_equal_memory": None if baseline is None else round(r["cost_usd"] / baseline, 2),
    }


def baseline_row(result: BaselineResult) -> dict[str, Any]:
    p = result.point
    return {
        "latency_s": p.latency_s,
        "rate_limit": p.rate_limit,
        "vulnerabilities": p.vulnerabilities,
        "time_scale": p.time_scale,
        "status": result.status,
        "projected": result.status == "sampled",
        "pages": result.pages,
        "requests": result.requests,
        "throttled_429": result.throttled,
        "per_page_real_s": round(result.per_page_s * p.time_scale, 3),
        "wall_real_s": round(result.projected_wall_s * p.time_scale, 1),
        "finishes_in_15min": result.finishes_in_budget,
        "max_pages_in_15min": result.max_pages_in_budget,
        "max_vulnerabilities_in_15min": result.max_vulnerabilities_in_budget,
        "memory_mb": MEMORY_MB,
        "cost_usd": round(result.cost_usd, 6),
        "cost_per_1000_pages_usd": round(result.cost_usd / p.minimum_pages * 1000, 5),
    }


def write_all(
    out: Path,
    results: Sequence[PointResult],
    baselines: dict[tuple[float, int, int, float], BaselineResult],
    *,
    mode: str,
    notes: Sequence[str],
) -> list[Path]:
    """Write `points.csv`, `points.json`, `baseline.csv`, `summary.md` and the plots; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [row(r, baselines.get(baseline_key(r.point))) for r in results]
    base_rows = [baseline_row(b) for b in baselines.values()]
    written = [out / "points.csv", out / "baseline.csv", out / "points.json", out / "summary.md"]
    _write_csv(written[0], rows)
    _write_csv(written[1], base_rows)
    machine = {"machine": platform.machine(), "python": platform.python_version(), "cpus": _cpus()}
    detail = [
        {**row_, "aws_requests": r.aws_requests, "extra": r.extra}
        for row_, r in zip(rows, results, strict=True)
    ]
    written[2].write_text(
        json.dumps(
            {"mode": mode, "notes": list(notes), **machine, "points": detail, "baseline": base_rows},
            indent=2,
            default=str,
        )
    )
    written[3].write_text(summary_markdown(rows, base_rows, mode=mode, notes=notes))
    written += plot(out, rows, base_rows)
    return written


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        if not rows:
            return
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(out: Path, rows: Sequence[dict[str, Any]], base_rows: Sequence[dict[str, Any]]) -> list[Path]:
    """Three PNGs: time/bound against concurrency per latency (and cursor style); pages a minute
    against the limit; cost per 1,000 pages per point with the baseline's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [out / "time_over_bound.png", out / "pages_per_minute.png", out / "cost_per_1000_pages.png"]
    ok = [r for r in rows if r["status"] == "succeeded" and r.get("verdict", "passed") == "passed"]

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: defaultdict[tuple[float, str], list[tuple[int, float]]] = defaultdict(list)
    for r in ok:
        series[(r["latency_s"], r["cursor_style"])].append((r["concurrency"], r["time_over_bound"]))
    for (latency, cursor), values in sorted(series.items()):
        values.sort()
        ax.plot(
            [v[0] for v in values],
            [v[1] for v in values],
            marker="o" if cursor == "arrayconnection" else "s",
            linestyle="-" if cursor == "arrayconnection" else "--",
            label=f"{latency:g} s, {cursor}",
        )
    ax.axhline(1.10, color="grey", linestyle=":", label="target 1.10")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("worker MaximumConcurrency")
    ax.set_ylabel("wall time / (N / R)")
    ax.set_title("Time over the rate-limit bound (end to end)")
    ax.set_xticks(sorted({r["concurrency"] for r in ok}) or [1])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in ok:
        ax.scatter(r["rate_limit"], r["pages_per_min_real"], color="tab:blue")
    limits = sorted({r["rate_limit"] for r in ok} | {b["rate_limit"] for b in base_rows})
    ax.plot(limits, limits, color="grey", linestyle=":", label="the limit")
    for b in base_rows:
        ax.scatter(
            b["rate_limit"],
            60.0 / b["per_page_real_s"] if b["per_page_real_s"] else 0,
            color="tab:red",
            marker="x",
        )
    ax.scatter([], [], color="tab:blue", label="fleet (whole run)")
    ax.scatter([], [], color="tab:red", marker="x", label="sequential baseline")
    ax.set_xlabel("rate limit (requests / minute)")
    ax.set_ylabel("pages / minute (real-time equivalent)")
    ax.set_title("Throughput against the limit")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(7.0, 0.5 * (len(ok) + len(base_rows)) + 2), 4.5))
    labels = [f"W{r['concurrency']} {r['latency_s']:g}s {r['cursor_style'][:2]}" for r in ok]
    values = [r["cost_per_1000_pages_usd"] for r in ok]
    labels += [f"baseline {b['latency_s']:g}s" for b in base_rows]
    values += [b["cost_per_1000_pages_usd"] for b in base_rows]
    colors = ["tab:blue"] * len(ok) + ["tab:red"] * len(base_rows)
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("USD per 1,000 pages (us-east-1, arm64)")
    ax.set_title("Estimated cost per 1,000 pages")
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths


def merge_rerun(out: Path, rerun: Path, *, note: str) -> list[Path]:
    """Replace the points of `out` (a sweep's results folder) by the same-named points of `rerun`
    (another sweep's, for example `--only` after a fix), keep its baseline, and rewrite the CSV, JSON,
    summary and plots; `note` says what was re-measured and why. Returns the paths written."""
    document = json.loads((out / "points.json").read_text())
    again = {p["name"]: p for p in json.loads((rerun / "points.json").read_text())["points"]}
    missing = set(again) - {p["name"] for p in document["points"]}
    if missing:
        raise ValueError(f"{sorted(missing)} are not points of {out}")
    detail = [again.get(p["name"], p) for p in document["points"]]
    rows = _rows(detail)
    base_rows = document["baseline"]
    # Ratios to the baseline follow the re-measured wall time and cost.
    for row_ in rows:
        base = _baseline_of(row_, base_rows)
        if base and row_["name"] in again:
            row_["baseline_wall_real_s"] = base["wall_real_s"]
            row_["baseline_finishes_15min"] = base["finishes_in_15min"]
            row_["speedup_vs_baseline"] = round(base["wall_real_s"] / row_["wall_real_s"], 2)
            row_["cost_vs_baseline"] = round(row_["cost_usd"] / base["cost_usd"], 2)
            row_.update(cost_columns(row_, base["wall_real_s"]))
    notes = [*document["notes"], note]
    document.update(notes=notes, points=[{**p, **r} for p, r in zip(detail, rows, strict=True)])
    written = [out / "points.csv", out / "points.json", out / "summary.md"]
    _write_csv(written[0], rows)
    written[1].write_text(json.dumps(document, indent=2, default=str))
    written[2].write_text(summary_markdown(rows, base_rows, mode=document["mode"], notes=notes))
    return written + plot(out, rows, base_rows)


def rerender(out: Path, *, note: str, memory_mb: Mapping[str, int | None] | None = None) -> list[Path]:
    """Recompute the cost columns (`cost_columns`) of a sweep's results folder `out` from its
    points.json, running nothing, and rewrite points.csv, points.json and summary.md's point table;
    the rest of summary.md (a heading written by hand, the baseline table) is kept and `note` joins its
    notes. `memory_mb` (by role: worker, scheduler, finalize; None for a function the point did not
    have) gives the memory of points saved before it was recorded; a point's own wins.

    Raises ValueError when a point's worker memory is known from neither.
    """
    document = json.loads((out / "points.json").read_text())
    for point in document["points"]:
        for role in MEMORY_ROLES:
            key = f"{role}_memory_mb"
            if point.get(key) is None and memory_mb is not None:
                point[key] = memory_mb.get(role)
        if point.get("worker_memory_mb") is None:
            raise ValueError(f"{point['name']} in {out} has no worker memory: pass memory_mb")
        base = _baseline_of(point, document["baseline"])
        point.update(cost_columns(point, base["wall_real_s"] if base else None))
    rows = _rows(document["points"])
    # As write_all lays a point out: its row, then the nested detail.
    document["points"] = [
        {**r, **{k: p[k] for k in _NESTED if k in p}} for r, p in zip(rows, document["points"], strict=True)
    ]
    document["notes"] = [*document["notes"], note]
    summary = (out / "summary.md").read_text().splitlines()
    start = next(i for i, line in enumerate(summary) if line.startswith("| point |"))
    end = next((i for i in range(start, len(summary)) if not summary[i].startswith("|")), len(summary))
    summary[start:end] = point_table(rows)
    # The notes are the list just above the table, a blank line between.
    summary[start - 1 : start - 1] = [f"- {note}"]
    written = [out / "points.csv", out / "points.json", out / "summary.md"]
    _write_csv(written[0], rows)
    written[1].write_text(json.dumps(document, indent=2, default=str))
    written[2].write_text("\n".join(summary) + "\n")
    return written


def _rows(detail: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The CSV rows of points.json's points: everything but the nested detail."""
    return [{k: v for k, v in p.items() if k not in _NESTED} for p in detail]


def _baseline_of(r: Mapping[str, Any], base_rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The baseline row measured on `r`'s tenant: same latency, limit and size (None: none was)."""
    tenant = (r["latency_s"], r["rate_limit"], r["vulnerabilities"])
    return next(
        (b for b in base_rows if (b["latency_s"], b["rate_limit"], b["vulnerabilities"]) == tenant), None
    )
