"""Finishing a run once all its ranges have committed: manifest, statistics, status, scope.

Exactly once where it matters: the manifest and the statistics are deterministic rewrites (a replayed
Finalize writes the same objects again), and only the call whose conditional write moves the run from
`running` to `succeeded` emits the run's metrics. Releasing the scope is idempotent and repeated by
every replay, so a crash between the status write and the scope write heals on redelivery.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from vanta_vuln_sync import stats
from vanta_vuln_sync.messages import PageRange
from vanta_vuln_sync.run.dedupe import dedupe_objects
from vanta_vuln_sync.run.services import Services
from vanta_vuln_sync.run.step import UnknownRunError
from vanta_vuln_sync.store.checkpoints import ChainCheckpoints, Checkpoint, chain_of, thinned
from vanta_vuln_sync.store.state import RUNNING, SUCCEEDED, RangeState, RunState
from vanta_vuln_sync.store.storage import delete_uncommitted, put_manifest, raw_prefix

# Not a child logger: children made before the handler's logger (import order) are orphaned; Logger
# instances of one service share one handler and one set of context keys anyway.
logger = Logger()
tracer = Tracer()


@tracer.capture_method
async def finalize_run(run_id: str, *, services: Services) -> bool:
    """Write the manifest and statistics of `run_id` and mark it succeeded; True for the one call that
    marked it. A Finalize for a run that already ended, or whose ranges are not all done, changes
    nothing. Raises UnknownRunError for a run the table does not hold."""
    store = services.store
    run = await store.get_run(run_id)
    if run is None:
        raise UnknownRunError(f"run {run_id} is not in the state table (expired or never planned)")
    if run.status != RUNNING:
        if run.status == SUCCEEDED:
            ranges = await store.list_ranges(run_id)
            await store.release_scope(run.scope, run_id, _full_counts(run, ranges), started_at=run.started_at)
        logger.info("run already ended; Finalize is a no-op", extra={"status": run.status})
        return False
    if not run.all_ranges_done:
        logger.warning(
            "Finalize before every range committed; the last range will send another",
            extra={"ranges_done": run.ranges_done, "ranges_total": run.ranges_total},
        )
        return False
    ranges = await store.list_ranges(run_id)
    s3, bucket = services.aws.s3, services.settings.data_bucket
    committed = [(r.resource, o) for r in ranges for o in r.objects]
    for resource in sorted({r.resource for r in ranges}):
        stray = await delete_uncommitted(
            s3, bucket, raw_prefix(resource, run_id), {str(o["key"]) for _, o in committed}
        )
        if stray:
            logger.info("deleted objects of uncommitted deliveries", extra={"objects": stray})
    objects, copies = await dedupe_objects(s3, bucket, committed)
    if copies:
        logger.info("removed records read twice across a join", extra={"copies": copies})
    finished_at = datetime.fromtimestamp(services.clock(), UTC)
    run_info = _run_info(run, ranges, objects, finished_at, services.settings.owner_tag_key)
    await put_manifest(
        services.aws.s3, services.settings.data_bucket, run_id, manifest(run, ranges, run_info)
    )
    computed = await stats.write_run_outputs(services.aws.s3, services.settings.data_bucket, run_info)
    # Lost-reply safe: the one Finalize whose write moved the run counts it, even if the reply was lost.
    marked = await store.finish_run_once(run_id, SUCCEEDED, finisher=uuid.uuid4().hex)
    if marked:
        seconds = (finished_at - run.started_at).total_seconds()
        services.count("RunsSucceeded", 1)
        if run.warnings:
            services.count("RunsInexact", 1)
            logger.warning("run is not exact", extra={"warnings": list(run.warnings)})
        services.count("RunSeconds", max(0.0, seconds), MetricUnit.Seconds)
        if services.metrics is not None:
            stats.emit_metrics(services.metrics, computed)
        await stats.send_digest(
            services.aws.s3,
            services.settings.data_bucket,
            computed,
            topic_arn=services.settings.digest_topic_arn,
        )
        logger.info("run succeeded", extra={"run_id": run_id, "seconds": round(seconds, 1)})
    await store.save_checkpoints(run.scope, run_id, chain_checkpoints(await store.get_plan(run_id), ranges))
    await store.release_scope(run.scope, run_id, _full_counts(run, ranges), started_at=run.started_at)
    return marked


def chain_checkpoints(plan: list[PageRange], ranges: list[RangeState]) -> list[ChainCheckpoints]:
    """The cursor checkpoints each shard chain of a run passed through (its pieces' merged, at most
    MAX_KEPT evenly spaced), with the chain's filters and length in data pages, for the next run of
    the scope to start pieces from (store/checkpoints.py). Offset ranges keep none."""
    filters = {(p.resource, chain_of(p.shard)): p.filters for p in plan if p.offset is None}
    merged: dict[tuple[str, str], list[Checkpoint]] = {}
    pages: dict[tuple[str, str], int] = {}
    for r in ranges:
        key = (r.resource, chain_of(r.shard))
        if key not in filters:
            continue
        merged.setdefault(key, []).extend(r.checkpoints)
        pages[key] = max(pages.get(key, 0), r.next_page_index)
    return [
        ChainCheckpoints(resource, chain, dict(filters[(resource, chain)]), pages[key], tuple(thinned(found)))
        for key, found in sorted(merged.items())
        if found
        for resource, chain in [key]
    ]


def _run_info(
    run: RunState,
    ranges: list[RangeState],
    objects: list[tuple[str, dict[str, Any]]],
    finished_at: datetime,
    owner_tag_key: str,
) -> stats.RunInfo:
    raw = sorted(
        (
            stats.RawObject(resource=resource, key=str(o["key"]), records=int(o["records"]))
            for resource, o in objects
        ),
        key=lambda o: o.key,
    )
    return stats.RunInfo(
        id=run.run_id,
        scope=run.scope,
        started_at=run.started_at,
        finished_at=finished_at,
        requests=run.requests + sum(r.requests for r in ranges),
        retries=sum(r.retries for r in ranges),
        throttled=sum(r.throttled for r in ranges),
        objects=raw,
        warnings=run.warnings,
        owner_tag_key=owner_tag_key,
        mode={resource: "full" if mode == "full" else "incremental" for resource, mode in run.modes.items()},
    )


def manifest(run: RunState, ranges: list[RangeState], info: stats.RunInfo) -> dict[str, Any]:
    """The run manifest: what the run was, and every raw object it wrote with its record count."""
    per_resource = Counter[str]()
    for obj in info.objects:
        per_resource[obj.resource] += obj.records
    return {
        "run_id": run.run_id,
        "scope": run.scope,
        "reason": run.reason,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(info.finished_at),
        "mode": dict(info.mode),
        "ranges": run.ranges_total,
        "pages": sum(r.pages for r in ranges),
        "records": dict(per_resource),
        # False when a join could not be made while Vanta's lists changed (`warnings` say where).
        "exact": not run.warnings,
        "warnings": list(run.warnings),
        # What planning changed to stay exact (for instance a shard filter that did not split a list).
        "notices": list(run.notices),
        "counters": {"requests": info.requests, "retries": info.retries, "throttled": info.throttled},
        "objects": [{"resource": o.resource, "key": o.key, "records": o.records} for o in info.objects],
    }


def _full_counts(run: RunState, ranges: list[RangeState]) -> dict[str, int]:
    """Record counts of the resources this run listed in full (they size the next run's plan)."""
    counts = Counter[str]()
    for r in ranges:
        counts[r.resource] += r.records
    return {resource: counts[resource] for resource, mode in run.modes.items() if mode == "full"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
