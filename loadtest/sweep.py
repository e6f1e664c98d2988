"""`python -m loadtest.sweep [--full]`: the concurrency sweep on the embedded runtime, with the baseline.

Quick (default): a few ~200-page points at 10x-20x time scale, about 2-3 minutes here. `--full`: the
grid of points.py (>= 2,000-page syncs; about 80 minutes) and the unscaled production points (>= 300
pages at 50/min, about 6 minutes each). Every deadline scales with the point (deadlines.py). A point
fails when its run does not succeed or an invocation timed out; the exit status is 1 if any failed.
Results go to `loadtest/results/`, or with `--full` to `loadtest/results/full/`; a partial run
(`--only TEXT`) to `only/TEXT/` below that, never over a whole sweep's results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import faulthandler
import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from loadtest.baseline import BaselineResult, run_baseline
from loadtest.embedded import PointResult, run_point
from loadtest.points import full_points, quick_points
from loadtest.pricing import PRICES_AS_OF
from loadtest.results import baseline_key, write_all

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
QUICK_BASELINE_SAMPLE = 20
# The baseline's time per page is steady (latency plus a fixed pause): 100 pages measure it well, and
# running it to the end would take 15 real minutes a point, scaled, for a known answer.
FULL_BASELINE_SAMPLE = 100


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.sweep", description=__doc__)
    parser.add_argument("--full", action="store_true", help="the whole grid (over an hour)")
    parser.add_argument(
        "--out", type=Path, default=None, help="results folder (default loadtest/results[/full])"
    )
    parser.add_argument("--only", default="", help="run only points whose name contains this text")
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds per point before giving up (at least 3 x the point's bound)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="run every scaled point at this scale instead of its own (unscaled points stay unscaled)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the sequential baseline")
    parser.add_argument(
        "--baseline-pages",
        type=int,
        default=None,
        help="pages the baseline samples before projecting (0: to its end; default 20, with --full 100)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or default_out(full=args.full, only=args.only)
    # `kill -USR1 <pid>` prints every thread's stack: how to see where a stuck point waits.
    faulthandler.register(signal.SIGUSR1)
    # The handlers log at ERROR only; moto's "not supported" warnings are reported by the runtime's own
    # summary elsewhere and are noise here.
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "VantaVulnSyncLoadTest")
    points = full_points() if args.full else quick_points()
    if args.time_scale is not None:
        points = [p if p.time_scale == 1.0 else p.replace(time_scale=args.time_scale) for p in points]
    points = [p for p in points if args.only in p.name]
    if not points:
        print(f"no {'full' if args.full else 'quick'} point's name contains {args.only!r}", file=sys.stderr)
        return 2
    mode = "full" if args.full else "quick"
    started = time.monotonic()
    notes = [
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {mode} sweep, {os.cpu_count()} CPUs shared "
        "by moto, the simulator and every worker in one process",
        "Time-scaled: the simulator's limit is limit x scale and its latency latency / scale, so every "
        "stretch spent on Vanta (its latency, its rate limit) shrinks by the scale. The stretches with "
        "no Vanta request going on (trigger to the first request, the last planning request to the "
        "workers' first, the last request to done: AWS calls, cold starts, Finalize) take the same "
        "seconds at any scale; real-equivalent time = (wall - those) x scale + those.",
        "time/bound = real-equivalent trigger-to-done time / (minimum pages / limit); 'at scale' = the "
        "same ratio as run, every second multiplied (an upper bound: it also multiplies the emulator's own "
        "AWS time mid-run); fetch/bound = first-to-last Vanta request / (requests made / limit).",
        f"Cost: us-east-1 prices of {PRICES_AS_OF} (loadtest/pricing.py); Lambda compute from each "
        "invocation's measured duration x its function's memory, the worker's and the scheduler's scaled to "
        "real time (Finalize's, CPU-bound, as run); AWS requests counted at moto. x floor: the sync's cost "
        "over one 256 MB container waiting out the bound; x baseline "
        "(equal memory): over the baseline's time priced at the worker's memory.",
        "MB/worker: peak process RSS growth during the run / peak worker containers (upper bound).",
        "Deadlines scale with the point: function timeouts, queue visibility timeouts, the step's hand-off "
        "reserve and idle delay, the request timeout and the retry budget are production's divided by the "
        "scale (deadlines.py); a failed batch comes back after its queue's visibility timeout, as in AWS. "
        "Invocation p50 / max / timeout are real-equivalent seconds (x scale). A point with a timed-out "
        "invocation is marked failed.",
    ]
    sample = args.baseline_pages
    if sample is None:
        sample = FULL_BASELINE_SAMPLE if args.full else QUICK_BASELINE_SAMPLE
    results: list[PointResult] = []
    baselines: dict[tuple[float, int, int, float], BaselineResult] = {}
    for number, point in enumerate(points, 1):
        print(f"[{number}/{len(points)}] {point.name} ...", flush=True)
        result = run_point(point, timeout=max(args.timeout, 3 * point.bound_seconds))
        results.append(result)
        print(
            f"    {result.status}: {result.wall_s:.1f} s (bound {point.bound_seconds:.1f} s, "
            f"ratio {result.ratio:.2f}, fetch {result.fetch_ratio:.2f}), {result.pages} pages, "
            f"{result.throttled} x 429, max {result.max_requests_in_60s} in 60 s "
            f"(limit {point.simulated_rate}), ${result.cost_per_1000_pages:.4f} / 1k pages "
            f"({result.cost_over_floor:.1f} x floor)",
            flush=True,
        )
        print(
            f"    real-equivalent: {result.wall_real_s:.1f} s ({result.ratio_real:.3f} x bound; "
            f"{result.unscaled_s:.1f} s without Vanta requests counted once)",
            flush=True,
        )
        for function in ("worker", "scheduler"):
            t = result.timing_real(function)
            print(
                f"    {function}: {t['invocations']} invocations, p50 {t['p50_s']} s, max {t['max_s']} s "
                f"of a {t['timeout_s']} s timeout (real-equivalent), {t['timed_out']} timed out",
                flush=True,
            )
        finalize = result.extra.get("finalize_invocations_s") or []
        if finalize:
            print(
                f"    finalize invocations ran {', '.join(f'{s:g}' for s in finalize)} s as run "
                f"(worker timeout {point.deadlines.worker_timeout} s as run)",
                flush=True,
            )
        print(f"    {'passed' if result.passed else 'FAILED: ' + '; '.join(result.failures)}", flush=True)
        key = baseline_key(point)
        if not args.no_baseline and key not in baselines:
            baseline = run_baseline(point, sample_pages=sample or None)
            baselines[key] = baseline
            print(
                f"    baseline: {baseline.per_page_s * point.time_scale:.2f} s/page real, "
                f"{baseline.projected_wall_s:.1f} s for the dataset ({baseline.status}), "
                f"max {baseline.max_pages_in_budget} pages in 15 min",
                flush=True,
            )
    notes.append(
        f"Baseline sampled: {sample} pages, the rest projected from its time per page."
        if sample
        else "Baseline run to its end."
    )
    notes.append(f"Sweep took {time.monotonic() - started:.0f} s here.")
    for path in write_all(out, results, baselines, mode=mode, notes=notes):
        print(f"wrote {path}")
    return exit_status(results)


def default_out(*, full: bool, only: str) -> Path:
    """Where results go without `--out`: the sweep's folder, or for a partial run (`--only`) a folder of
    its own below it (`only/<text>`), so a point re-run alone never overwrites a whole sweep's results."""
    base = DEFAULT_OUT / "full" if full else DEFAULT_OUT
    if not only:
        return base
    name = "".join(c if c.isalnum() or c in "-." else "_" for c in only).lstrip(".")
    return base / "only" / (name or "_")


def exit_status(results: Sequence[PointResult]) -> int:
    """0 when every point passed (its run succeeded and no invocation timed out), else 1."""
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
