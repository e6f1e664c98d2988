"""Finalize's statistics step at scale: time and peak memory for N vulnerabilities.

Raw objects are generated once from the simulator's tenant (gzip NDJSON, 5,000 records an object, as
ranges of 50 pages write them) into a local directory, then each measurement runs in a fresh child
process so its peak RSS (`resource.getrusage`) is the statistics step's alone:

- `first`: a run with no previous run (full remediation sync);
- `next`: the following run, with the trend against the first run's active ids and an incremental
  remediation sync merged onto the first run's snapshot.

Each child does what `write_run_outputs` does except the S3 calls (it reads through `DirectorySource`,
the same `ByteSource` interface `S3Source` implements): stream and tally every record, summarize,
encode the per-run artefacts, render the report. So the numbers are compute; S3 transfer comes on top
(about 2 GETs per 10,000 records, overlapping nothing).

    python loadtest/bench_finalize.py --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

RESOURCES = ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets")
PER_OBJECT = 5_000


def generate(root: Path, vulnerabilities: int) -> dict[str, Any]:
    """Write the tenant's raw objects under `root`; the manifest the children read."""
    from vanta_vuln_sync.simulator import Simulator, SimulatorConfig

    started = time.perf_counter()
    dataset = Simulator(SimulatorConfig(seed=1, vulnerabilities=vulnerabilities)).dataset
    objects = []
    for name in RESOURCES:
        order = dataset.order(name)
        for seq, start in enumerate(range(0, len(order), PER_OBJECT)):
            key = f"raw/resource={name}/run=bench/all-{seq:05d}.ndjson.gz"
            lines = b"".join(
                orjson.dumps(dataset.render(name, i)) + b"\n" for i in order[start : start + PER_OBJECT]
            )
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(gzip.compress(lines, compresslevel=6))
            objects.append({"resource": name, "key": key, "records": min(PER_OBJECT, len(order) - start)})
    size = sum((root / o["key"]).stat().st_size for o in objects)
    return {
        "now": dataset.now_ts,
        "objects": objects,
        "generate_seconds": round(time.perf_counter() - started, 1),
        "raw_mb": round(size / 2**20, 1),
    }


async def finalize_locally(root: Path, manifest: dict[str, Any], scenario: str) -> dict[str, Any]:
    """One statistics step over the directory; returns its timings and a few counts."""
    from vanta_vuln_sync.stats import (
        DirectorySource,
        RawObject,
        RunInfo,
        compute_run_statistics,
        render_report,
    )
    from vanta_vuln_sync.stats.history import HistoryEntry

    now = datetime.fromtimestamp(manifest["now"], UTC) + timedelta(days=1 if scenario == "next" else 0)
    objects = [RawObject(**o) for o in manifest["objects"]]
    previous = None
    mode: dict[str, Any] = {"vulnerability-remediations": "full"}
    if scenario == "next":
        previous = HistoryEntry("first", "x", "x", "first/active.ndjson.gz", "first/remediations.ndjson.gz")
        mode = {"vulnerability-remediations": "incremental"}
    run = RunInfo(scenario, "all", now, now + timedelta(minutes=5), objects=objects, mode=mode)

    t0 = time.perf_counter()
    computed = await compute_run_statistics(DirectorySource(root), run, previous)  # artefacts encoded too
    t1 = time.perf_counter()
    out = root / scenario
    out.mkdir(exist_ok=True)
    (out / "active.ndjson.gz").write_bytes(computed.active_ids)
    (out / "remediations.ndjson.gz").write_bytes(computed.remediation_snapshot)
    (out / "stats.json").write_bytes(orjson.dumps(computed.stats, option=orjson.OPT_INDENT_2))
    (out / "report.html").write_text(render_report(computed.stats, []))
    t2 = time.perf_counter()
    stats = computed.stats
    return {
        "compute_seconds": round(t1 - t0, 1),
        "write_seconds": round(t2 - t1, 1),
        "records": sum(stats["run"]["records"].values()),
        "active": stats["vulnerabilities"]["active"],
        "remediations": stats["remediations"]["total"],
        "trend_new": None if stats["trend"]["new"] is None else stats["trend"]["new"]["total"],
    }


def child(root: Path, scenario: str) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    result = asyncio.run(finalize_locally(root, manifest, scenario))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss is in KiB on Linux: the peak resident set of this process, interpreter included.
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024)
    # CPU time next to wall time: on a shared machine (or a 1 GB Lambda, ~0.6 vCPU) wall time stretches.
    result["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 1)
    print(json.dumps(result))


def measure(root: Path, scenario: str) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(root), scenario], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], metavar="N")
    parser.add_argument("--child", nargs=2, metavar=("DIR", "SCENARIO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1])
        return
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-finalize-") as tmp:
            root = Path(tmp)
            manifest = generate(root, size)
            (root / "manifest.json").write_text(json.dumps(manifest))
            print(
                f"{size:>9,} vulnerabilities: {manifest['raw_mb']} MiB of gzip NDJSON in "
                f"{len(manifest['objects'])} objects (generated in {manifest['generate_seconds']} s)",
                flush=True,
            )
            for scenario in ("first", "next"):
                result = measure(root, scenario)
                rows.append({"vulnerabilities": size, "scenario": scenario, **result})
                print(f"  {scenario:<5} {json.dumps(result)}", flush=True)
    print()
    print(
        "| vulnerabilities | run | records read | stats + artefacts (s) | write + report (s) "
        "| process CPU (s) | peak RSS (MiB) |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        run = "first (no previous)" if row["scenario"] == "first" else "next (trend + remediation merge)"
        print(
            f"| {row['vulnerabilities']:,} | {run} | {row['records']:,} | {row['compute_seconds']} | "
            f"{row['write_seconds']} | {row['cpu_seconds']} | {row['peak_rss_mb']:,} |"
        )


if __name__ == "__main__":
    main()
