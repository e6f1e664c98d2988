"""Handlers the poller tests deploy into moto. What each does is chosen by the message bodies (JSON):
`{"fail": true}` reports that record failed, `{"raise": true}` raises, `{"sleep": S}` sleeps S seconds.

Each container (thread) keeps an event loop in `threading.local`, as the real handlers do, so the
tests can see which container and loop ran each invocation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

_container = threading.local()
_lock = threading.Lock()
calls: list[Call] = []
closed_loops: list[int] = []


@dataclass(frozen=True)
class Call:
    thread: int
    loop: int
    message_ids: list[str]
    bodies: list[dict[str, Any]]
    receive_counts: list[int]
    remaining_ms_at_start: int
    remaining_ms_after_sleep: int
    function_name: str
    event: dict[str, Any]


def _loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_container, "loop", None)
    if loop is None:
        loop = _container.loop = asyncio.new_event_loop()
    return loop


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    remaining_at_start = context.get_remaining_time_in_millis()
    loop = _loop()
    bodies = [json.loads(record["body"]) for record in event["Records"]]
    sleep = max((body.get("sleep", 0) for body in bodies), default=0)
    loop.run_until_complete(asyncio.sleep(sleep))
    with _lock:
        calls.append(
            Call(
                thread=threading.get_ident(),
                loop=id(loop),
                message_ids=[record["messageId"] for record in event["Records"]],
                bodies=bodies,
                receive_counts=[int(r["attributes"]["ApproximateReceiveCount"]) for r in event["Records"]],
                remaining_ms_at_start=remaining_at_start,
                remaining_ms_after_sleep=context.get_remaining_time_in_millis(),
                function_name=context.function_name,
                event=event,
            )
        )
    if any(body.get("raise") for body in bodies):
        raise RuntimeError("asked to raise")
    failures = [
        {"itemIdentifier": record["messageId"]}
        for record, body in zip(event["Records"], bodies, strict=True)
        if body.get("fail")
    ]
    for body in bodies:
        if body.get("log"):
            # As Powertools' batch processor does for a record that raised.
            logging.getLogger("poller_test").warning("record failed", exc_info=ValueError(body["log"]))
    return {"batchItemFailures": failures}


def teardown() -> None:
    """Close this container's loop (the poller calls it as each container thread ends)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_container, "loop", None)
    if loop is not None:
        loop.close()
        with _lock:
            closed_loops.append(id(loop))
