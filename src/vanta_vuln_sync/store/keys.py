"""The state table's keys: every item's partition and sort key, spelled once.

The table has `pk` (S, hash) and `sk` (S, range) and a TTL attribute `ttl`. Items: the fleet's Vanta
token and rate, the admission slots, a run (its row, plan and one row per range) and a scope.
"""

from __future__ import annotations

from typing import Any

Key = dict[str, Any]

TOKEN_KEY: Key = {"pk": {"S": "token#vanta"}, "sk": {"S": "token"}}
RATE_KEY: Key = {"pk": {"S": "rate#vanta"}, "sk": {"S": "rate"}}
ADMISSION_KEY: Key = {"pk": {"S": "admission#runs"}, "sk": {"S": "slots"}}

RUN_PK_PREFIX = "run#"
RUN_SK, PLAN_SK, SCOPE_SK = "run", "plan", "scope"
RANGE_SK_PREFIX = "range#"


def run_pk(run_id: str) -> str:
    """The partition of a run's items: its row, its plan and its ranges."""
    return f"{RUN_PK_PREFIX}{run_id}"


def run_key(run_id: str, sk: str = RUN_SK) -> Key:
    """The key of a run's row (or, with `sk`, its plan or one of its ranges)."""
    return {"pk": {"S": run_pk(run_id)}, "sk": {"S": sk}}


def range_sk(resource: str, shard: str) -> str:
    """The sort key of one range of a run."""
    return f"{RANGE_SK_PREFIX}{resource}#{shard}"


def scope_key(scope: str) -> Key:
    """The key of a scope's item: its running run and its last successful one."""
    return {"pk": {"S": f"scope#{scope}"}, "sk": {"S": SCOPE_SK}}


def checkpoints_pk(scope: str) -> str:
    """The partition of a scope's cursor checkpoints (one item per chain)."""
    return f"checkpoints#{scope}"
