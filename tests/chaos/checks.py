"""The promises checked after every chaos scenario, each as a list of problems (empty when kept):
- the run's raw output holds every simulator record exactly once (every object under the run's prefix,
  which is what Athena reads, not only those the manifest lists); when the tenant changed during the
  run (the simulator's churn), every record present all along exactly once, the others at most once,
  and the run says it is exact;
- stats.json equals the reference computation (tests/stats/reference.py) over the simulator's records
  (over the records raw/ holds, when the tenant changed);
- the run completed exactly once: one run in the table, succeeded, moved there by one applied write;
- nothing but the genuine poison this scenario sent sits in a DLQ, each with its reason.
"""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

# tests/ is on sys.path (pytest's rootdir-relative imports): the stats engineer's reference, imported as is.
from stats.helpers import assert_matches
from stats.reference import reference_stats
from vanta_vuln_sync.local.embedded_aws import EmbeddedAws, EmbeddedStack
from vanta_vuln_sync.local.faults import AwsFaultInjector
from vanta_vuln_sync.local.world import received_messages
from vanta_vuln_sync.simulator import Simulator

RESOURCES = ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets")


@dataclass
class Verdict:
    """The problems found (empty: every promise kept) and the run's own counters."""

    problems: list[str] = field(default_factory=list)
    run_id: str | None = None
    vanta_retries: int = 0


def verify(
    stack: EmbeddedStack,
    embedded: EmbeddedAws,
    sim: Simulator,
    injector: AwsFaultInjector,
    *,
    poison: dict[str, str],
    ended: str | None,
    errors: dict[str, str],
) -> Verdict:
    """Every check of the module doc; see Verdict."""
    s3, sqs, ddb = (embedded.client(name) for name in ("s3", "sqs", "dynamodb"))
    outputs = stack.outputs
    verdict = Verdict()
    runs = _run_items(ddb, outputs["StateTableName"])
    if len(runs) != 1:
        verdict.problems.append(f"{len(runs)} runs in the state table, expected 1")
    if not runs:
        verdict.problems.append(f"no run (ended: {ended}; last function errors: {errors})")
        verdict.problems += _dlq_problems(sqs, outputs, poison)
        return verdict
    run = runs[0]
    run_id = verdict.run_id = run["pk"]["S"].removeprefix("run#")
    status = run.get("status", {}).get("S")
    if status != "succeeded":
        failure = run.get("failure", {}).get("S")
        verdict.problems.append(f"run {status} ({failure or ended}; last function errors: {errors})")
        verdict.problems += _unfinished_ranges(ddb, outputs["StateTableName"], run_id, injector)
    verdict.problems += _completed_once(injector, run_id)
    bucket = outputs["DataBucketName"]
    churned = sim.churn_status()["events"] > 0
    verdict.problems += _raw_problems(s3, bucket, run_id, sim, churned=churned)
    if status == "succeeded":
        stats = orjson.loads(s3.get_object(Bucket=bucket, Key=f"runs/{run_id}/stats.json")["Body"].read())
        verdict.problems += _stats_problems(
            stats, _raw_records(s3, bucket, run_id) if churned else _served_records(sim)
        )
        manifest = orjson.loads(
            s3.get_object(Bucket=bucket, Key=f"runs/{run_id}/manifest.json")["Body"].read()
        )
        if manifest.get("exact") is not True:
            verdict.problems.append(f"the run says it is not exact: {manifest.get('warnings')}")
        verdict.vanta_retries = int(manifest.get("counters", {}).get("retries", 0))
        verdict.problems += _manifest_problems(manifest, s3, bucket, run_id)
    verdict.problems += _dlq_problems(sqs, outputs, poison)
    return verdict


def _run_items(ddb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ddb.scan(
        TableName=table,
        ConsistentRead=True,
        FilterExpression="sk = :run AND begins_with(pk, :prefix)",
        ExpressionAttributeValues={":run": {"S": "run"}, ":prefix": {"S": "run#"}},
    )["Items"]
    return items


def _unfinished_ranges(ddb: Any, table: str, run_id: str, injector: AwsFaultInjector) -> list[str]:
    """Evidence for a run that did not finish: its ranges not done, and the writes whose reply was lost."""
    items = ddb.query(
        TableName=table,
        ConsistentRead=True,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"run#{run_id}"}},
    )["Items"]
    ranges = [
        f"{i['sk']['S']} status={i.get('status', {}).get('S')} next_seq={i.get('next_seq', {}).get('N')} "
        f"handed_on={i.get('handed_on', {}).get('N')}"
        for i in items
        if i["sk"]["S"] != "run" and i.get("status", {}).get("S") != "done"
    ]
    lost = [
        f"{c.operation}({c.params.get('UpdateExpression') or c.params.get('MessageBody', '')[:80]})"
        for c in injector.applied
        if c.reply_lost
    ]
    return [f"unfinished ranges: {ranges}", f"writes applied whose reply was lost: {lost}"]


def _completed_once(injector: AwsFaultInjector, run_id: str) -> list[str]:
    """One applied conditional write moved the run from running to succeeded (RunsSucceeded counts it)."""
    moves = [
        call
        for call in injector.applied
        if call.service == "dynamodb"
        and call.operation == "UpdateItem"
        and call.params.get("Key", {}).get("pk") == {"S": f"run#{run_id}"}
        and call.params.get("ExpressionAttributeValues", {}).get(":status") == {"S": "succeeded"}
    ]
    return [] if len(moves) == 1 else [f"the run was marked succeeded by {len(moves)} applied writes"]


def _raw_objects(s3: Any, bucket: str, run_id: str) -> dict[str, list[dict[str, Any]]]:
    objects: dict[str, list[dict[str, Any]]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="raw/"):
        for obj in page.get("Contents", []):
            if f"/run={run_id}/" in obj["Key"]:
                body = gzip.decompress(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                objects[obj["Key"]] = [orjson.loads(line) for line in body.splitlines() if line]
    return objects


def _raw_problems(s3: Any, bucket: str, run_id: str, sim: Simulator, *, churned: bool) -> list[str]:
    objects = _raw_objects(s3, bucket, run_id)
    problems = []
    for resource in RESOURCES:
        got = Counter(
            r["id"] for key, records in objects.items() if f"resource={resource}/" in key for r in records
        )
        twice = sum(1 for n in got.values() if n > 1)
        if churned:
            truth = sim.dataset.churn_truth(resource)
            missing = len(truth.stable - set(got))
            extra = len(set(got) - truth.stable - truth.transient)
            total = len(truth.stable)
        else:
            expected = Counter(r["id"] for r in sim.dataset.records(resource))
            missing = len(expected - got) if not twice else len(set(expected) - set(got))
            extra = len(set(got) - set(expected))
            total = len(expected)
        if twice or missing or extra:
            problems.append(
                f"raw {resource}: {missing} missing, {twice} written more than once, {extra} unknown "
                f"(of {total})"
            )
    return problems


def _raw_records(s3: Any, bucket: str, run_id: str) -> dict[str, list[dict[str, Any]]]:
    objects = _raw_objects(s3, bucket, run_id)
    return {
        resource: [r for key, records in objects.items() if f"resource={resource}/" in key for r in records]
        for resource in RESOURCES
    }


def _served_records(sim: Simulator) -> dict[str, list[dict[str, Any]]]:
    return {resource: sim.dataset.records(resource) for resource in RESOURCES}


def _manifest_problems(manifest: dict[str, Any], s3: Any, bucket: str, run_id: str) -> list[str]:
    listed = sorted(o["key"] for o in manifest.get("objects", []))
    stored = sorted(_raw_objects(s3, bucket, run_id))
    if listed != stored:
        return [f"manifest lists {len(listed)} raw objects, the run's prefix holds {len(stored)}"]
    return []


def _stats_problems(stats: dict[str, Any], records: dict[str, list[dict[str, Any]]]) -> list[str]:
    as_of = datetime.fromisoformat(stats["run"]["as_of"].replace("Z", "+00:00"))
    expected = reference_stats(records[RESOURCES[0]], records[RESOURCES[1]], records[RESOURCES[2]], as_of)
    problems = []
    for section in ("vulnerabilities", "remediations", "assets", "top"):
        try:
            assert_matches(stats[section], expected[section], section)
        except AssertionError as exc:
            problems.append(f"stats differ from the reference: {exc}")
    return problems


def _dlq_problems(sqs: Any, outputs: dict[str, str], poison: dict[str, str]) -> list[str]:
    problems = []
    for queue, key in (("request", "RequestDLQUrl"), ("page", "PageDLQUrl"), ("finalize", "FinalizeDLQUrl")):
        messages = received_messages(sqs, outputs[key])
        bodies = sorted(m["Body"] for m in messages)
        expected = [poison[queue]] if queue in poison else []
        # The fault injector may duplicate the poison message itself: each copy is parked, all the same.
        if sorted(set(bodies)) != expected:
            shown = [b[:120] for b in bodies if b not in expected][:3]
            problems.append(f"{queue} DLQ holds {len(bodies)} messages, expected {len(expected)}: {shown}")
        elif any("reason" not in m.get("MessageAttributes", {}) for m in messages):
            problems.append(f"{queue} DLQ: a poison message carries no reason")
    return problems
