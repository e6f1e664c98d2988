"""A first run surveys no list's length: it plans one open range a resource, and ranges split themselves
while the run has range slots free (run/split.py). Every record is still written once, and a worker that
dies between the steps of a split leaves the same output.

Crashes are injected by thin wrappers around the real aiobotocore clients (test scaffolding), as in
test_redelivery.py: the wrapped call raises instead of reaching moto, as if the Lambda died there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest

from vanta_vuln_sync.aws import AwsClients
from vanta_vuln_sync.run.services import Services
from vanta_vuln_sync.store.keys import RUN_SK

from .conftest import Stack
from .drive import pump
from .test_redelivery import Crash, Wrapped

REQUEST = orjson.dumps(
    {"v": 1, "type": "SyncRequest", "resources": ["vulnerabilities"], "mode": "full", "reason": "split"}
)
SCOPE = "vulnerabilities"
VULNERABILITIES = 1_500
# Pages of 10 records (9 new a page: each overlaps the one before by a record), 6 pages a step, and 2
# range slots: the one planned range splits into several while it reads the list's 167 pages.
SETTINGS = {"PAGE_SIZE": "10", "PAGE_BUDGET": "6", "RANGE_SLOTS": "2"}


def crash_in_every_split(aws: AwsClients) -> AwsClients:
    """The first split of each step dies once: every other one after its first step (the split is
    recorded on the range's item, not yet counted into the run), the others after counting it (before
    its message is sent). The delivery that comes next finds it unsettled and settles it. Each step dies
    once at most: a message that died at every delivery would go to the DLQ, as it should."""
    step_of: dict[str, str] = {}  # split name -> the step that made it
    died: list[str] = []  # steps that died

    async def update_item(**kwargs: Any) -> Any:
        expression, values = kwargs["UpdateExpression"], kwargs["ExpressionAttributeValues"]
        if expression.startswith("SET #end_offset = :at"):
            step_of.setdefault(values[":name"]["S"], f"{kwargs['Key']} {values[':seq']['N']}")
        claim = kwargs.get("ExpressionAttributeNames", {}).get("#counter") == "ranges_total"
        step = step_of.get(values[":name_value"]["S"].split("#")[1], "") if claim else ""
        dies = claim and step not in died
        if dies:
            died.append(step)
            if len(died) % 2:
                raise Crash("after the split was recorded, before the run counted it")
        reply = await aws.dynamodb.update_item(**kwargs)
        if dies:
            raise Crash("after the run counted the split, before its message was sent")
        return reply

    return replace(aws, dynamodb=Wrapped(aws.dynamodb, update_item=update_item))


class RunReads:
    """Counts the reads of run items (RunStore.get_run), passing every call on to the real client."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, aws: AwsClients) -> AwsClients:
        async def get_item(**kwargs: Any) -> Any:
            self.count += kwargs["Key"]["sk"]["S"] == RUN_SK
            return await aws.dynamodb.get_item(**kwargs)

        return replace(aws, dynamodb=Wrapped(aws.dynamodb, get_item=get_item))


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(None, id="undisturbed"),
        pytest.param(crash_in_every_split, id="crash-in-every-split", marks=pytest.mark.exactness),
    ],
)
async def test_a_first_run_splits_its_one_range_and_writes_every_record_once(
    stack: Callable[..., Awaitable[Stack]],
    open_services: Callable[..., Awaitable[Services]],
    fault: Callable[[AwsClients], AwsClients] | None,
) -> None:
    # Given a first run of 1,500 vulnerabilities with arrayconnection cursors and 2 range slots (a
    # compact run: its length is not probed, run/split.py)
    deployed = await stack(sim={"vulnerabilities": VULNERABILITIES, "seed": 41}, **SETTINGS)
    deployed.send_request(REQUEST)
    # When it runs through the scheduler and the workers (dying in every split, for the fault)
    reads = RunReads()
    stats = await pump(
        deployed, await open_services(fault or reads), done=lambda: deployed.last_success(SCOPE) is not None
    )
    run_id = deployed.last_success(SCOPE)
    assert run_id is not None
    item = deployed.run_item(run_id)
    # Then planning spent one request (the survey's first record) and planned one range
    assert int(item["requests"]["N"]) == 1
    assert len(orjson.loads(deployed.plan_item(run_id)["plan"]["S"])) == 1
    # And the range split itself: more ranges ran than were planned, never more open than the slots
    added = item.get("added_ranges", {}).get("SS", [])
    assert len(added) >= 4
    assert int(item["ranges_total"]["N"]) == 1 + len(added) == int(item["ranges_done"]["N"])
    # And every record is written once, none missing
    written = [r["id"] for records in deployed.records_by_key(run_id).values() for r in records]
    assert not [i for i, n in Counter(written).items() if n > 1]
    assert sorted(written) == sorted(r["id"] for r in deployed.sim.dataset.records("vulnerabilities"))
    # And, undisturbed, no request was spent on a list's length nor on a join: the pages (9 new records
    # each), the survey, and an empty page for each range split off past the end of the list (a step
    # that died reads its pages again)
    pages = -(-VULNERABILITIES // 9)
    past_end = sum(1 for name in added if int(name.rsplit("#x", 1)[1]) >= VULNERABILITIES)
    if fault is None:
        assert deployed.sim.counters.requests == pages + 1 + past_end, (added, past_end)
        # And a range that found nothing to split asked again pages later (ASK_EVERY_PAGES), not at
        # every page: the workers read the run's item less than once a page (measured: 99 reads for
        # 167 pages; 195 when every page asked)
        assert reads.count < pages, reads.count
    assert deployed.dlq_messages(deployed.page_dlq_url) == []
    if fault is not None:
        assert any("split" in error for error in stats.errors), stats.errors
