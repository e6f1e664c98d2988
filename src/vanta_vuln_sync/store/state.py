"""Run state in the DynamoDB state table: runs, their ranges, and the scope each run belongs to.

Items (pk / sk):
- `run#<run_id>` / `run`: the run (status, plan, ranges total and done, counters).
- `run#<run_id>` / `range#<resource>#<shard>`: one range's progress (`next_seq`, next cursor or offset,
  status, the S3 objects its steps wrote).
- `scope#<scope>` / `scope`: the run going on for the scope and the last successful one (watermark and
  record counts, which size the next plan).
- `checkpoints#<scope>` / `<resource>#<chain>`: the cursor checkpoints of a shard chain that the
  scope's last successful run walked (store/checkpoints.py), from which the next run starts pieces of it.

Progress moves only by conditional writes: a step commits only if the range's `next_seq` is the step's
`seq`; a finished range is counted into its run only if its name is not yet in the run's set of done
ranges; a run completes or fails only from `running`. A duplicate or replayed write therefore fails its
condition and changes nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vanta_vuln_sync.messages import PageRange
from vanta_vuln_sync.store.checkpoints import ChainCheckpoints
from vanta_vuln_sync.store.checkpoints import from_text as checkpoints_from_text
from vanta_vuln_sync.store.checkpoints import to_text as checkpoints_text
from vanta_vuln_sync.store.dynamo import conditional_write, every_item, from_item, to_attr, to_item
from vanta_vuln_sync.store.keys import (
    ADMISSION_KEY,
    PLAN_SK,
    RANGE_SK_PREFIX,
    RUN_SK,
    checkpoints_pk,
    range_sk,
    run_key,
    run_pk,
    scope_key,
)
from vanta_vuln_sync.store.models import (
    DONE,
    FAILED,
    OPEN,
    RUNNING,
    SUCCEEDED,
    RangeState,
    RunState,
    ScopeState,
    StepCommit,
    iso,
    parse_iso,
    plan_from_text,
    plan_to_text,
    range_from_item,
    run_from_item,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# The records live in models.py; importing them from here keeps working.
__all__ = [
    "DONE",
    "FAILED",
    "OPEN",
    "RUNNING",
    "SUCCEEDED",
    "RangeState",
    "RunState",
    "RunStore",
    "ScopeState",
    "StepCommit",
]


# Run and range items expire after this; the scope item (watermark, counts) is kept.
_RUN_TTL_SECONDS = 30 * 24 * 3600


class RunStore:
    """Conditional reads and writes of runs, ranges and scopes; takes the DynamoDB client and table."""

    def __init__(self, ddb: DynamoDBClient, table: str, clock: Callable[[], float] = time.time) -> None:
        self._ddb = ddb
        self._table = table
        self._clock = clock

    async def claim_scope(self, scope: str, run_id: str, *, stale_after: float) -> bool:
        """Make `run_id` the scope's running run unless another run holds it (claimed less than
        `stale_after` seconds ago). True when `run_id` holds the scope afterwards."""
        now = int(self._clock())
        written = await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=scope_key(scope),
            UpdateExpression="SET running_run_id = :me, running_since = :now",
            ConditionExpression=(
                "attribute_not_exists(running_run_id) OR running_run_id = :me OR running_since < :stale"
            ),
            ExpressionAttributeValues={
                ":me": {"S": run_id},
                ":now": {"N": str(now)},
                ":stale": {"N": str(int(now - stale_after))},
            },
        )
        return written is not None

    async def take_over_scope(self, scope: str, run_id: str, previous: str) -> bool:
        """Replace a finished run's leftover claim on the scope with `run_id`; True on success."""
        written = await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=scope_key(scope),
            UpdateExpression="SET running_run_id = :me, running_since = :now",
            ConditionExpression="running_run_id = :previous",
            ExpressionAttributeValues={
                ":me": {"S": run_id},
                ":now": {"N": str(int(self._clock()))},
                ":previous": {"S": previous},
            },
        )
        return written is not None

    async def get_scope(self, scope: str) -> ScopeState:
        """The scope's state (empty when it never ran)."""
        reply = await self._ddb.get_item(
            TableName=self._table,
            Key=scope_key(scope),
            ConsistentRead=True,
        )
        if "Item" not in reply:
            return ScopeState(scope=scope)
        item = from_item(reply["Item"])
        started = item.get("last_success_started_at")
        return ScopeState(
            scope=scope,
            running_run_id=item.get("running_run_id"),
            running_since=int(item.get("running_since", 0)),
            last_success_run_id=item.get("last_success_run_id"),
            last_success_started_at=parse_iso(started) if started else None,
            counts={k: int(v) for k, v in (item.get("counts") or {}).items()},
        )

    async def release_scope(
        self, scope: str, run_id: str, counts: dict[str, int] | None, *, started_at: datetime
    ) -> None:
        """Drop `run_id`'s claim on `scope`; with `counts` (a success), record the run as the scope's last
        success (watermark `started_at`, record counts for sizing the next plan).

        Idempotent: a finalize that is replayed writes the same values again.
        """
        key = scope_key(scope)
        await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=key,
            UpdateExpression="REMOVE running_run_id, running_since",
            ConditionExpression="running_run_id = :me",
            ExpressionAttributeValues={":me": {"S": run_id}},
        )
        if counts is None:
            return
        # Only a newer run may move the watermark (two runs of one scope can finish out of order
        # only after a stale claim was taken over).
        await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=key,
            UpdateExpression=(
                "SET last_success_run_id = :me, last_success_started_at = :started, counts = :counts"
            ),
            ConditionExpression=(
                "attribute_not_exists(last_success_started_at) OR last_success_started_at <= :started"
            ),
            ExpressionAttributeValues={
                ":me": {"S": run_id},
                ":started": {"S": iso(started_at)},
                ":counts": to_attr(counts),
            },
        )

    async def create_run(self, run: RunState) -> RunState:
        """Store a new run with its plan; if the run already exists (a redelivered request), the stored
        one is returned unchanged, so a replay enqueues the same plan.

        The plan goes in its own item, written first and only once: the run item, which every step reads
        and every finished range updates, stays a few hundred bytes whatever the plan's size (DynamoDB
        bills by item size). Whoever writes the plan item first wins; everyone, including a replay after
        a crash between the two writes, then uses the stored plan, so the run item's count matches it."""
        await self._put_once(
            {
                "pk": run_pk(run.run_id),
                "sk": PLAN_SK,
                "plan": plan_to_text(run.plan),
                "ttl": int(self._clock()) + _RUN_TTL_SECONDS,
            }
        )
        plan = await self.get_plan(run.run_id)
        await self._put_once(
            {
                "pk": run_pk(run.run_id),
                "sk": RUN_SK,
                "run_id": run.run_id,
                "scope": run.scope,
                "status": RUNNING,
                "started_at": iso(run.started_at),
                "reason": run.reason,
                "modes": run.modes,
                "notices": list(run.notices),
                "ranges_total": len(plan),
                "ranges_done": 0,
                "requests": run.requests,
                "range_slots": run.range_slots,
                "ttl": int(self._clock()) + _RUN_TTL_SECONDS,
            }
        )
        stored = await self.get_run(run.run_id)
        assert stored is not None
        return replace(stored, plan=plan)

    async def _put_once(self, values: dict[str, Any]) -> None:
        """Put an item unless one with its key exists (then leave that one as it is)."""
        await conditional_write(
            self._ddb.put_item,
            TableName=self._table,
            Item=to_item(values),
            ConditionExpression="attribute_not_exists(pk)",
        )

    async def get_plan(self, run_id: str) -> list[PageRange]:
        """The run's planned ranges, as the scheduler stored them (empty if there is no plan item)."""
        reply = await self._ddb.get_item(
            TableName=self._table, Key=run_key(run_id, PLAN_SK), ConsistentRead=True
        )
        return plan_from_text(from_item(reply["Item"])["plan"]) if "Item" in reply else []

    async def get_run(self, run_id: str) -> RunState | None:
        """The run, read consistently; None when there is no such run (or it expired)."""
        reply = await self._ddb.get_item(TableName=self._table, Key=run_key(run_id), ConsistentRead=True)
        if "Item" not in reply:
            return None
        return run_from_item(run_id, from_item(reply["Item"]))

    async def get_range(self, run_id: str, resource: str, shard: str) -> RangeState | None:
        """A range's committed progress; None before its first step commits."""
        reply = await self._ddb.get_item(
            TableName=self._table, Key=run_key(run_id, range_sk(resource, shard)), ConsistentRead=True
        )
        return range_from_item(from_item(reply["Item"])) if "Item" in reply else None

    async def list_ranges(self, run_id: str) -> list[RangeState]:
        """Every range of the run that has committed at least one step, in key order."""
        items = await every_item(
            self._ddb.query,
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :range)",
            ExpressionAttributeValues={":pk": {"S": run_pk(run_id)}, ":range": {"S": RANGE_SK_PREFIX}},
            ConsistentRead=True,
        )
        return [range_from_item(item) for item in items]

    async def ranges_left(self, run_id: str) -> dict[str, int | None]:
        """Records each open offset range of the run has left as its last commit stands (its planned
        end less where its next step starts; None for a range open to the list's end), by
        `resource#shard`. Only what that needs is read (a projection), not the ranges' object lists."""
        items = await every_item(
            self._ddb.query,
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :range)",
            ProjectionExpression="#resource, #shard, #status, #next_offset, #end_offset",
            ExpressionAttributeNames={
                "#resource": "resource",
                "#shard": "shard",
                "#status": "status",
                "#next_offset": "next_offset",
                "#end_offset": "end_offset",
            },
            ExpressionAttributeValues={":pk": {"S": run_pk(run_id)}, ":range": {"S": RANGE_SK_PREFIX}},
            ConsistentRead=True,
        )
        return {
            f"{item['resource']}#{item['shard']}": (
                None if item.get("end_offset") is None else int(item["end_offset"]) - int(item["next_offset"])
            )
            for item in items
            if item.get("status") == OPEN and item.get("next_offset") is not None and "shard" in item
        }

    async def commit_step(self, page_range: PageRange, step: StepCommit) -> bool:
        """Record one step of a range: its object, its counts, where the next step starts. Only if the
        range's `next_seq` is `step.seq`, and for a step that `publishes_head` only if the range before
        has not handed over to this one; False when that fails (an earlier delivery committed the step,
        or the range was handed over): nothing changed. One item, one conditional write, so the counts
        move exactly once.

        (Not a transaction with the run item: moto server's TransactWriteItems is not safe under
        concurrent requests, and the run's count of finished ranges is kept idempotent instead, see
        `count_range_done`.)"""
        p = page_range
        names: tuple[str, ...] = ()
        if step.seq == 0:
            condition = "attribute_not_exists(#next_seq)"
            seq_values: dict[str, Any] = {}
            if step.publishes_head:
                condition += " AND attribute_not_exists(#handed_by)"
                names += ("handed_by",)
        else:
            condition = "#next_seq = :seq"
            seq_values = {":seq": {"N": str(step.seq)}}
        objects = [{"key": step.object_key, "records": step.records}] if step.object_key else []
        counters = ("records", "pages", "requests", "retries", "throttled")
        names += (
            "next_seq", "status", "next_cursor", "next_offset", "resource", "shard", "objects", "ttl",
            "next_anchors", "next_verify", "end_offset", "next_shard", "next_page_index",
            "next_stop_ids", "next_end_page",
        )  # fmt: skip
        head_set, head_values = "", dict[str, Any]()
        if step.head is not None:
            head_set = ", #head = :head"
            names += ("head",)
            head_values = {":head": to_attr(list(step.head))}
        if step.checkpoints is not None:
            head_set += ", #checkpoints = :checkpoints"
            names += ("checkpoints",)
            head_values[":checkpoints"] = {"S": checkpoints_text(step.checkpoints)}
        written = await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=run_key(p.run_id, range_sk(p.resource, p.shard)),
            UpdateExpression=(
                "SET #next_seq = :next, #status = :status, #next_cursor = :cursor, "
                "#next_offset = :offset, #resource = :resource, #shard = :shard, "
                "#objects = list_append(if_not_exists(#objects, :empty), :objects), #ttl = :ttl, "
                "#next_anchors = :anchors, #next_verify = :verify, #end_offset = :end_offset, "
                "#next_shard = :next_shard, #next_page_index = :page_index, "
                "#next_stop_ids = :stop_ids, #next_end_page = :end_page"
                + head_set
                + ", "
                + ", ".join(f"#{c} = if_not_exists(#{c}, :zero) + :{c}" for c in counters)
            ),
            ConditionExpression=condition,
            ExpressionAttributeNames={f"#{name}": name for name in (*names, *counters)},
            ExpressionAttributeValues={
                ":next": {"N": str(step.seq + 1)},
                ":status": {"S": DONE if step.done else OPEN},
                ":cursor": to_attr(step.next_cursor),
                ":offset": to_attr(step.next_offset),
                ":resource": {"S": p.resource},
                ":shard": {"S": p.shard},
                ":empty": {"L": []},
                ":objects": to_attr(objects),
                ":zero": {"N": "0"},
                ":ttl": {"N": str(int(self._clock()) + _RUN_TTL_SECONDS)},
                **{f":{c}": {"N": str(getattr(step, c))} for c in counters},
                ":anchors": to_attr(list(step.next_anchors)),
                ":verify": to_attr(step.next_verify),
                ":end_offset": to_attr(step.end_offset),
                ":next_shard": to_attr(step.next_shard),
                ":page_index": {"N": str(step.next_page_index)},
                ":stop_ids": to_attr(list(step.next_stop_ids)),
                ":end_page": to_attr(step.next_end_page),
                **head_values,
                **seq_values,
            },
        )
        return written is not None

    async def hand_over(self, run_id: str, resource: str, shard: str, *, by: str) -> RangeState | None:
        """Claim range `shard` for the range `by` before it, which stops where `shard` was to begin: only
        if `shard` has not committed its first page (its head). `shard` then starts from where `by`'s
        committed progress ends, once `by` has committed its last step (never from a place an
        uncommitted delivery saw). None when claimed (or claimed already); otherwise the range's
        progress, whose head is then known (or which stepped aside)."""
        written = await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=run_key(run_id, range_sk(resource, shard)),
            UpdateExpression="SET #handed_by = :by, #resource = :resource, #shard = :shard, #ttl = :ttl",
            ConditionExpression="attribute_not_exists(#head)",
            ExpressionAttributeNames={
                "#handed_by": "handed_by",
                "#resource": "resource",
                "#shard": "shard",
                "#ttl": "ttl",
                "#head": "head",
            },
            ExpressionAttributeValues={
                ":by": {"S": by},
                ":resource": {"S": resource},
                ":shard": {"S": shard},
                ":ttl": {"N": str(int(self._clock()) + _RUN_TTL_SECONDS)},
            },
        )
        if written is None:
            return await self.get_range(run_id, resource, shard)
        return None

    async def step_aside(self, page_range: PageRange) -> bool:
        """Mark chain piece `page_range` void (its checkpoint did not hold), naming the piece, stop ids
        and planned end it would have walked to, so the piece before it walks on through its part. Only
        if the piece before has not handed over to it; False when it has (start from there instead).
        The head is set empty, so no later hand-over can succeed."""
        p = page_range
        written = await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=run_key(p.run_id, range_sk(p.resource, p.shard)),
            UpdateExpression="SET #void = :true, #head = if_not_exists(#head, :empty), "
            "#void_next = :next, #void_stop_ids = :stop, #void_end_page = :end, "
            "#resource = :resource, #shard = :shard, #ttl = :ttl",
            ConditionExpression="attribute_not_exists(#handed_by) AND "
            "(attribute_not_exists(#head) OR #void = :true)",
            ExpressionAttributeNames={
                "#void": "void",
                "#head": "head",
                "#void_next": "void_next",
                "#void_stop_ids": "void_stop_ids",
                "#void_end_page": "void_end_page",
                "#handed_by": "handed_by",
                "#resource": "resource",
                "#shard": "shard",
                "#ttl": "ttl",
            },
            ExpressionAttributeValues={
                ":true": {"BOOL": True},
                ":empty": {"L": []},
                ":next": to_attr(p.next_shard),
                ":stop": to_attr(list(p.stop_ids)),
                ":end": to_attr(p.end_page),
                ":resource": {"S": p.resource},
                ":shard": {"S": p.shard},
                ":ttl": {"N": str(int(self._clock()) + _RUN_TTL_SECONDS)},
            },
        )
        return written is not None

    async def propose_split(self, parent: PageRange, seq: int, spawn: PageRange) -> bool:
        """Record that range `parent`, in its step `seq` (not committed yet), gives its part from
        `spawn.offset` on to the new range `spawn` (run/split.py): its end and successor become the
        spawn's start and name, and the spawn is kept, unsent, until it is settled. Only if step `seq`
        is not committed, the range's successor is still the spawn's (`spawn.next_shard`) and no other
        spawn is unsettled; False otherwise (nothing changed)."""
        names = {"#next_seq": "next_seq", "#next_shard": "next_shard", "#spawn": "spawn",
                 "#spawn_sent": "spawn_sent", "#end_offset": "end_offset"}  # fmt: skip
        values: dict[str, Any] = {
            ":seq": {"N": str(seq)},
            ":at": to_attr(spawn.offset),
            ":name": {"S": spawn.shard},
            ":spawn": {"S": spawn.to_json().decode()},
            ":false": {"BOOL": False},
        }
        if spawn.next_shard is None:
            successor = "attribute_type(#next_shard, :null)"
            values[":null"] = {"S": "NULL"}
        else:
            successor = "#next_shard = :was"
            values[":was"] = {"S": spawn.next_shard}
        written = await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=run_key(parent.run_id, range_sk(parent.resource, parent.shard)),
            UpdateExpression="SET #end_offset = :at, #next_shard = :name, #spawn = :spawn, "
            "#spawn_sent = :false",
            ConditionExpression=f"#next_seq = :seq AND {successor} AND "
            "(attribute_not_exists(#spawn_sent) OR #spawn_sent = :true)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={**values, ":true": {"BOOL": True}},
        )
        return written is not None

    async def claim_range_slot(self, run_id: str, resource: str, shard: str, *, seen_total: int) -> bool:
        """Count range `shard`, split off while the run was running, into the run's ranges: only if the
        run is running and still has `seen_total` ranges (no other range took the free slot since) and
        this range was not counted before. False when that fails (nothing changed)."""
        written = await self._count_once(
            run_id,
            "ranges_total",
            "added_ranges",
            f"{resource}#{shard}",
            condition=" AND #counter = :seen",
            values={":seen": {"N": str(seen_total)}},
        )
        return written is not None

    async def settle_split(self, parent: PageRange, spawn: PageRange, *, kept: bool) -> None:
        """End range `parent`'s unsettled split into `spawn`: `kept` (the spawn was counted and sent)
        marks it sent; otherwise the range's end and successor go back to the spawn's (the range reads
        its part itself), if the split is still the range's."""
        key = run_key(parent.run_id, range_sk(parent.resource, parent.shard))
        if kept:
            await self._ddb.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET #spawn_sent = :true",
                ExpressionAttributeNames={"#spawn_sent": "spawn_sent"},
                ExpressionAttributeValues={":true": {"BOOL": True}},
            )
            return
        await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=key,
            UpdateExpression="SET #end_offset = :end, #next_shard = :next REMOVE #spawn, #spawn_sent",
            ConditionExpression="#next_shard = :name",
            ExpressionAttributeNames={
                "#end_offset": "end_offset",
                "#next_shard": "next_shard",
                "#spawn": "spawn",
                "#spawn_sent": "spawn_sent",
            },
            ExpressionAttributeValues={
                ":end": to_attr(spawn.end_offset),
                ":next": to_attr(spawn.next_shard),
                ":name": {"S": spawn.shard},
            },
        )

    async def save_checkpoints(self, scope: str, run_id: str, chains: list[ChainCheckpoints]) -> None:
        """Store the chains' checkpoints of a successful run of `scope` (one item per chain, replaced;
        idempotent), for the scope's next run to plan from."""
        for chain in chains:
            await self._ddb.put_item(
                TableName=self._table,
                Item=to_item(
                    {
                        "pk": checkpoints_pk(scope),
                        "sk": f"{chain.resource}#{chain.chain}",
                        "run_id": run_id,
                        "resource": chain.resource,
                        "chain": chain.chain,
                        "filters": dict(chain.filters),
                        "pages": chain.pages,
                        "checkpoints": checkpoints_text(chain.checkpoints),
                    }
                ),
            )

    async def get_checkpoints(self, scope: str) -> list[ChainCheckpoints]:
        """The checkpoints the scope's last successful runs stored, per chain (empty before any)."""
        items = await every_item(
            self._ddb.query,
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": checkpoints_pk(scope)}},
            ConsistentRead=True,
        )
        return [
            ChainCheckpoints(
                resource=str(item["resource"]),
                chain=str(item["chain"]),
                filters={str(k): str(v) for k, v in (item.get("filters") or {}).items()},
                pages=int(item.get("pages", 0)),
                checkpoints=tuple(checkpoints_from_text(item.get("checkpoints"))),
            )
            for item in items
        ]

    async def add_warning(self, run_id: str, warning: str) -> None:
        """Flag the run inexact with `warning` (a join it could not make); idempotent per text."""
        await self._ddb.update_item(
            TableName=self._table,
            Key=run_key(run_id),
            UpdateExpression="ADD #warnings :warning",
            ExpressionAttributeNames={"#warnings": "warnings"},
            ExpressionAttributeValues={":warning": {"SS": [warning[:500]]}},
        )

    async def mark_handed_on(self, run_id: str, resource: str, shard: str, seq: int) -> None:
        """Note that step `seq`'s continuation was enqueued, so a redelivered step `seq` does not enqueue
        it again (without the note every duplicate would beget a duplicate of the next step)."""
        await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=run_key(run_id, range_sk(resource, shard)),
            UpdateExpression="SET #handed_on = :seq",
            ConditionExpression="attribute_exists(#next_seq) AND "
            "(attribute_not_exists(#handed_on) OR #handed_on < :seq)",
            ExpressionAttributeNames={"#handed_on": "handed_on", "#next_seq": "next_seq"},
            ExpressionAttributeValues={":seq": {"N": str(seq)}},
        )

    async def mark_finalize_sent(self, run_id: str) -> None:
        """Note that the run's Finalize was enqueued (a replayed last step then sends no second one)."""
        await self._ddb.update_item(
            TableName=self._table,
            Key=run_key(run_id),
            UpdateExpression="SET #sent = :true",
            ExpressionAttributeNames={"#sent": "finalize_sent"},
            ExpressionAttributeValues={":true": {"BOOL": True}},
        )

    async def count_range_done(self, run_id: str, resource: str, shard: str) -> RunState | None:
        """Count a finished range into its run, once: the range's name joins the run's set of done
        ranges and `ranges_done` grows by one only if the name was not in it. Returns the run as this
        call left it, or None when the range was already counted or the run is no longer running (so
        exactly one call sees the last range counted)."""
        reply = await self._count_once(run_id, "ranges_done", "done_ranges", f"{resource}#{shard}")
        if reply is None:
            return None
        return run_from_item(run_id, from_item(reply["Attributes"]))

    async def _count_once(
        self,
        run_id: str,
        counter: str,
        names: str,
        name: str,
        *,
        condition: str = "",
        values: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Add one to the running run's `counter` and `name` to its set `names`, only if the name is not
        in it yet (and `condition` holds): the reply with the run as it left it, or None (nothing
        changed)."""
        return await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=run_key(run_id),
            UpdateExpression="ADD #counter :one, #names :name",
            ConditionExpression="#status = :running AND NOT contains(#names, :name_value)" + condition,
            ExpressionAttributeNames={"#counter": counter, "#names": names, "#status": "status"},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":name": {"SS": [name]},
                ":name_value": {"S": name},
                ":running": {"S": RUNNING},
                **(values or {}),
            },
            ReturnValues="ALL_NEW",
        )

    async def finish_run(self, run_id: str, status: str, *, failure: str | None = None) -> bool:
        """Move the run from running to `status` (succeeded or failed). True only for the one call that
        made the move; every later call (replays, duplicates) gets False. (`finish_run_once` with a
        finisher of its own.)"""
        return await self.finish_run_once(run_id, status, finisher=uuid.uuid4().hex, failure=failure)

    async def finish_run_once(
        self, run_id: str, status: str, *, finisher: str, failure: str | None = None
    ) -> bool:
        """`finish_run`, safe against a lost reply: the write also records `finished_by = finisher`, and
        when its condition fails the run is read back, so the call whose write was applied gets True even
        if DynamoDB's reply was lost and the SDK's retry then failed the condition. `finisher` must be
        unique to the calling attempt (a fresh uuid). True for exactly one call per run."""
        values: dict[str, Any] = {
            ":running": {"S": RUNNING},
            ":status": {"S": status},
            ":finished": {"S": iso(datetime.fromtimestamp(self._clock(), UTC))},
            ":failure": to_attr(failure),
            ":by": {"S": finisher},
        }
        written = await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=run_key(run_id),
            UpdateExpression=(
                "SET #status = :status, #finished_at = :finished, #failure = :failure, #by = :by"
            ),
            ConditionExpression="#status = :running",
            ExpressionAttributeNames={
                "#status": "status",
                "#finished_at": "finished_at",
                "#failure": "failure",
                "#by": "finished_by",
            },
            ExpressionAttributeValues=values,
        )
        if written is not None:
            return True
        reply = await self._ddb.get_item(TableName=self._table, Key=run_key(run_id), ConsistentRead=True)
        item = from_item(reply.get("Item") or {})
        return item.get("finished_by") == finisher and item.get("status") == status

    async def admit_run(self, run_id: str, *, cap: int) -> bool:
        """Take one of the `cap` run slots for `run_id` (or find it holds one already); False when all
        are held. Slots are the keys of one map item, each valued with when it was taken; a slot is
        given back only by `drop_run_slots` (the scheduler drops the slots of runs that ended)."""
        key = ADMISSION_KEY
        await conditional_write(
            self._ddb.put_item,
            TableName=self._table,
            Item={**key, "slots": {"M": {}}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        written = await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=key,
            UpdateExpression="SET #slots.#run = if_not_exists(#slots.#run, :now)",
            ConditionExpression="size(#slots) < :cap OR attribute_exists(#slots.#run)",
            ExpressionAttributeNames={"#slots": "slots", "#run": run_id},
            ExpressionAttributeValues={":now": {"N": str(int(self._clock()))}, ":cap": {"N": str(cap)}},
        )
        return written is not None

    async def run_slots(self) -> dict[str, int]:
        """The runs holding a slot, each with when it took it (epoch seconds)."""
        reply = await self._ddb.get_item(
            TableName=self._table,
            Key=ADMISSION_KEY,
            ConsistentRead=True,
        )
        slots = from_item(reply.get("Item") or {}).get("slots") or {}
        return {str(run_id): int(taken) for run_id, taken in slots.items()}

    async def drop_run_slots(self, run_ids: list[str]) -> None:
        """Give back the slots of `run_ids` (those that hold none are left alone)."""
        if not run_ids:
            return
        names = {f"#r{i}": run_id for i, run_id in enumerate(run_ids)}
        await conditional_write(
            self._ddb.update_item,
            TableName=self._table,
            Key=ADMISSION_KEY,
            UpdateExpression="REMOVE " + ", ".join(f"#slots.{name}" for name in names),
            ConditionExpression="attribute_exists(#slots)",
            ExpressionAttributeNames={"#slots": "slots", **names},
        )


# The run slots of admission control (see `RunStore.admit_run`): one item for the whole fleet.
