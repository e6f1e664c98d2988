"""Finding and reading runs in the state table, for the local runtime and the operator CLI.

The scheduler names a run after the request message that started it (`schedule.run_id_for`: the
message's SentTimestamp, to the second, and a digest of its id), so whoever sent the message can find
the run by trying the few seconds around the send.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vanta_vuln_sync.messages import FULL_SCOPE
from vanta_vuln_sync.store.dynamo import every_item
from vanta_vuln_sync.store.keys import RUN_PK_PREFIX, RUN_SK
from vanta_vuln_sync.store.state import RangeState, RunState, RunStore

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# Seconds either side of the send to try: SQS stamps SentTimestamp with its own clock.
_CLOCK_SLACK_SECONDS = 2


def candidate_run_ids(message_id: str, sent_after: float, sent_before: float) -> list[str]:
    """The run ids the scheduler may give the request `message_id` sent between the two epoch times."""
    # Imported here: schedule.py makes Powertools objects at import, which must wait for the environment.
    from vanta_vuln_sync.run.schedule import run_id_for

    first = math.floor(sent_after) - _CLOCK_SLACK_SECONDS
    last = math.ceil(sent_before) + _CLOCK_SLACK_SECONDS
    return [run_id_for(message_id, datetime.fromtimestamp(second, UTC)) for second in range(first, last + 1)]


async def find_run(store: RunStore, candidates: list[str]) -> RunState | None:
    """The first of `candidates` the state table holds, or None (not planned yet, or joined another)."""
    for run_id in candidates:
        run = await store.get_run(run_id)
        if run is not None:
            return run
    return None


async def latest_run_id(store: RunStore) -> str | None:
    """What `latest` means in every command: the last successful full sync (scope `all`, the run whose
    stats and report Finalize also writes under `latest/`); None before the first one."""
    return (await store.get_scope(FULL_SCOPE)).last_success_run_id


async def list_run_ids(ddb: DynamoDBClient, table: str) -> list[str]:
    """Every run id the state table holds (runs are kept 30 days), oldest first."""
    items = await every_item(
        ddb.scan,
        TableName=table,
        FilterExpression="sk = :run AND begins_with(pk, :prefix)",
        ExpressionAttributeValues={":run": {"S": RUN_SK}, ":prefix": {"S": RUN_PK_PREFIX}},
        ProjectionExpression="pk",
    )
    return sorted(str(item["pk"]).removeprefix(RUN_PK_PREFIX) for item in items)


async def runs_after(
    ddb: DynamoDBClient, table: str, store: RunStore, after: str | None, limit: int = 5
) -> list[RunState]:
    """The newest `limit` runs of any scope started after run `after` (all runs when None), oldest
    first: what `status latest` names besides the last successful full sync (a failed or running one)."""
    ids = [run_id for run_id in await list_run_ids(ddb, table) if after is None or run_id > after]
    runs = [await store.get_run(run_id) for run_id in ids[-limit:]]
    return [run for run in runs if run is not None]


@dataclass(frozen=True, slots=True)
class RunProgress:
    """A run and its ranges' committed progress; the counters add up the ranges (and planning)."""

    run: RunState
    ranges: list[RangeState]

    @property
    def pages(self) -> int:
        return sum(r.pages for r in self.ranges)

    @property
    def records(self) -> int:
        return sum(r.records for r in self.ranges)

    @property
    def requests(self) -> int:
        return self.run.requests + sum(r.requests for r in self.ranges)

    @property
    def retries(self) -> int:
        return sum(r.retries for r in self.ranges)

    @property
    def throttled(self) -> int:
        return sum(r.throttled for r in self.ranges)


async def read_progress(store: RunStore, run_id: str) -> RunProgress | None:
    """The run and its ranges, or None when the table does not hold the run."""
    run = await store.get_run(run_id)
    if run is None:
        return None
    return RunProgress(run, await store.list_ranges(run_id))
