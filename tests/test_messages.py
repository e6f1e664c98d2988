"""Messages: what validates, what is poison and why, and that every example in events/ stays valid."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from vanta_vuln_sync.messages import (
    MAX_BUNDLED,
    Finalize,
    MessageError,
    PageRange,
    PageRanges,
    SyncRequest,
    parse_message,
    parse_page_message,
    parse_sync_request,
)
from vanta_vuln_sync.run.sizing import CONTAINER_RANGES

EVENTS = Path(__file__).resolve().parent.parent / "events"
RUN_ID = "20261126T020000Z-3f2a9c1d7e"


def test_every_example_in_events_validates() -> None:
    files = sorted(EVENTS.glob("*.json"))
    assert len(files) >= 8
    for path in files:
        document = json.loads(path.read_text())
        bodies = [r["body"] for r in document["Records"]] if "Records" in document else [path.read_text()]
        for body in bodies:
            parse_message(body)  # raises MessageError if the example went stale


def test_schedule_input_is_the_full_scheduled_sync() -> None:
    request = parse_sync_request((EVENTS / "schedule-input.json").read_text())
    assert request.resources == ("vulnerabilities", "vulnerability-remediations", "vulnerable-assets")
    assert request.mode == "full"
    assert request.reason == "schedule"


def test_targeted_resync_filters_are_rendered_as_vanta_wants_them() -> None:
    request = parse_sync_request(
        orjson.dumps(
            {
                "v": 1,
                "type": "SyncRequest",
                "resources": ["vulnerabilities"],
                "filters": {"vulnerabilities": {"severity": "critical", "isDeactivated": False}},
            }
        )
    )
    assert request.filters["vulnerabilities"] == {
        "severity": "CRITICAL",
        "isDeactivated": "false",
        "includeVulnerabilitiesWithoutSlas": "true",
    }
    assert request.mode == "incremental"  # the default


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"v": 2, "type": "Finalize", "run_id": "20261126T020000Z-abc"}', "unsupported message version"),
        (b'{"type": "Finalize", "run_id": "20261126T020000Z-abc"}', "unsupported message version"),
        (b'{"v": 1, "type": "Bogus"}', "unknown message type"),
        (b'{"v": 1, "type": "Finalize"}', "run_id must look like"),
        (b'{"v": 1, "type": "SyncRequest", "resources": []}', "non-empty list"),
        (b'{"v": 1, "type": "SyncRequest", "resources": ["integrations"]}', "unknown resource"),
        (
            b'{"v": 1, "type": "SyncRequest", "resources": ["vulnerabilities"],'
            b' "filters": {"vulnerabilities": {"slaDeadlineAfter": "2026-01-01T00:00:00Z"}}}',
            "has no filter 'slaDeadlineAfter'",
        ),
        (
            b'{"v": 1, "type": "SyncRequest", "resources": ["vulnerabilities"], "mode": "partial"}',
            "mode must be",
        ),
        (
            b'{"v": 1, "type": "PageRange", "run_id": "20261126T020000Z-abc", "resource": "vulnerabilities",'
            b' "shard": "all", "filters": {}, "page_budget": 5}',
            "seq must be a whole number",
        ),
    ],
)
def test_invalid_message_is_rejected_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse_message(body)
    assert reason in caught.value.reason


def test_page_range_round_trips_through_json() -> None:
    original = PageRange(
        run_id=RUN_ID,
        resource="vulnerabilities",
        shard="o00003",
        filters={"includeVulnerabilitiesWithoutSlas": "true"},
        seq=2,
        page_budget=7,
        cursor="YXJyYXljb25uZWN0aW9uOjk5",
        offset=100,
        end_offset=400,
    )
    assert parse_page_message(original.to_json()) == original
    assert parse_page_message(Finalize(RUN_ID).to_json()) == Finalize(RUN_ID)
    request = SyncRequest(resources=("vulnerable-assets",), mode="full", reason="test")
    assert parse_sync_request(request.to_json()) == request


def test_message_on_the_wrong_queue_is_rejected() -> None:
    with pytest.raises(MessageError, match="does not belong on the request queue"):
        parse_sync_request(Finalize(RUN_ID).to_json())
    with pytest.raises(MessageError, match="does not belong on the page queue"):
        parse_page_message((EVENTS / "schedule-input.json").read_bytes())


def _step(shard: str, **fields: object) -> PageRange:
    base = PageRange(
        run_id=RUN_ID,
        resource="vulnerabilities",
        shard=shard,
        filters={"includeVulnerabilitiesWithoutSlas": "true"},  # as parsing completes them
        seq=2,
        page_budget=50,
        offset=500,
    )
    return PageRange(**{**{f: getattr(base, f) for f in PageRange.__dataclass_fields__}, **fields})


def test_steps_handed_on_together_round_trip_as_one_page_message() -> None:
    bundle = PageRanges((_step("o00000", anchors=("a", "b")), _step("x000000600", end_offset=900)))
    assert parse_page_message(bundle.to_json()) == bundle


@pytest.mark.parametrize(
    ("ranges", "reason"),
    [
        ([], "1 to 50"),
        ("o00000", "1 to 50"),
        ([{"v": 1, "type": "Finalize", "run_id": RUN_ID}], "PageRange object"),
        ([orjson.loads(_step("o00000").to_json()) | {"shard": "Not Valid"}], "PageRange.shard"),
    ],
    ids=["empty", "not-a-list", "a-finalize", "a-bad-step"],
)
def test_a_bad_bundle_is_poison_with_its_reason(ranges: object, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        parse_page_message(orjson.dumps({"v": 1, "type": "PageRanges", "ranges": ranges}))


def test_a_bundle_holds_at_most_one_containers_ranges() -> None:
    assert MAX_BUNDLED == CONTAINER_RANGES
    steps = [orjson.loads(_step(f"x{n:09d}").to_json()) for n in range(MAX_BUNDLED + 1)]
    with pytest.raises(MessageError, match="1 to 50"):
        parse_page_message(orjson.dumps({"v": 1, "type": "PageRanges", "ranges": steps}))
