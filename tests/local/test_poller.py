"""The SQS poller emulation against moto: batches, partial failures, visibility, DLQ, concurrency, time."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import poller_test_handlers
import pytest
from mapped_functions import MappedFunction
from poller_test_handlers import Call

from vanta_vuln_sync.local.containers import Invocation
from vanta_vuln_sync.local.context import EmulatedContext
from vanta_vuln_sync.local.poller import MappingConfig, Poller, failed_message_ids


@contextmanager
def polling(function: MappedFunction, **options: Any) -> Iterator[Poller]:
    poller = Poller(
        only_functions=[function.name], container_teardown=poller_test_handlers.teardown, **options
    )
    poller.start()
    try:
        yield poller
    finally:
        poller.stop()


def test_poller_deletes_batch_when_handler_succeeds(
    mapped_function: Callable[..., MappedFunction], recorded_calls: list[Call]
) -> None:
    function = mapped_function()
    sent = function.send({"n": 1}, {"n": 2}, {"n": 3})
    with polling(function) as poller:
        # Generous bounds: run_until returns as soon as the outcome holds; they only catch a hang (on two
        # loaded cores the delete can trail the invocation by seconds).
        # SQS delivers at least once: two pollers' receives may both get a message (moto's receive takes no
        # lock, and SQS may do the same), so the outcome is every message handled and none left.
        assert poller.run_until(lambda: {i for c in recorded_calls for i in c.message_ids} >= set(sent), 90)
        assert poller.run_until(lambda: function.depth() == 0, timeout=60)
        # The delete empties the queue a moment before the invocation's counters are settled.
        assert poller.run_until(lambda: poller.stats().in_flight == 0, timeout=10)
        stats = poller.stats().functions[function.name]
    assert {i for c in recorded_calls for i in c.message_ids} == set(sent)
    assert stats.succeeded == stats.invocations
    assert stats.failed == 0


def test_event_has_lambda_sqs_record_shape_when_handler_is_invoked(
    mapped_function: Callable[..., MappedFunction], recorded_calls: list[Call]
) -> None:
    function = mapped_function()
    function.sqs.send_message(
        QueueUrl=function.queue_url,
        MessageBody='{"n": 1}',
        MessageAttributes={"reason": {"DataType": "String", "StringValue": "testing"}},
    )
    with polling(function) as poller:
        assert poller.run_until(lambda: len(recorded_calls) == 1, timeout=10)
    record = recorded_calls[0].event["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(f":{function.name}")
    assert record["awsRegion"] == "us-east-1"
    assert record["body"] == '{"n": 1}'
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["messageAttributes"]["reason"]["stringValue"] == "testing"
    assert record["messageAttributes"]["reason"]["dataType"] == "String"
    assert record["receiptHandle"]
    assert record["messageId"] == recorded_calls[0].message_ids[0]


def test_only_failed_records_come_back_when_handler_reports_partial_batch_failure(
    mapped_function: Callable[..., MappedFunction], recorded_calls: list[Call]
) -> None:
    function = mapped_function(visibility_timeout=1)
    ok_id, failing_id = function.send({"n": "ok"}), function.send({"n": "bad", "fail": True})
    with polling(function) as poller:
        # Given the failing record was retried once (after its visibility timeout)...
        assert poller.run_until(lambda: any(2 in c.receive_counts for c in recorded_calls), timeout=10)
    seen = [(i, n) for c in recorded_calls for i, n in zip(c.message_ids, c.receive_counts, strict=True)]
    # ...the succeeded one was deleted and never redelivered.
    assert (ok_id[0], 2) not in seen
    assert (failing_id[0], 2) in seen


def test_record_moves_to_dlq_when_it_fails_max_receive_count_times(
    mapped_function: Callable[..., MappedFunction], recorded_calls: list[Call]
) -> None:
    function = mapped_function(visibility_timeout=1, max_receive_count=2)
    function.send({"n": "poison", "fail": True})
    with polling(function) as poller:
        assert poller.run_until(lambda: function.depth() == 0, timeout=15)
        time.sleep(0.2)
    assert function.dlq_bodies() == [{"n": "poison", "fail": True}]
    assert [c.receive_counts for c in recorded_calls] == [[1], [2]]


def test_whole_batch_comes_back_when_handler_raises(
    mapped_function: Callable[..., MappedFunction], recorded_calls: list[Call]
) -> None:
    function = mapped_function(visibility_timeout=1)
    sent = function.send({"n": 1}, {"n": 2, "raise": True})

    def both_came_back() -> bool:
        # Receive counts of 2 or more: two pollers' receives racing in moto can skip a count (at least once)
        counted = (zip(c.message_ids, c.receive_counts, strict=True) for c in recorded_calls)
        return {i for pairs in counted for i, n in pairs if n >= 2} == set(sent)

    with polling(function) as poller:
        assert poller.run_until(both_came_back, timeout=20)
        stats = poller.stats().functions[function.name]
    assert len(recorded_calls[0].message_ids) == 2, "both messages were in the first batch"
    assert stats.failed >= 1
    assert stats.last_error == "RuntimeError: asked to raise"


def test_logged_exception_is_the_failure_reason_when_handler_reports_a_record_failed(
    mapped_function: Callable[..., MappedFunction], recorded_calls: list[Call]
) -> None:
    function = mapped_function()
    function.send({"fail": True, "log": "no such run"})
    with polling(function) as poller:
        assert poller.run_until(lambda: poller.stats().functions[function.name].failed == 1, timeout=10)
        stats = poller.stats().functions[function.name]
    assert stats.last_error == "1 of 1 records failed: ValueError: no such run"


def test_concurrency_stays_at_maximum_concurrency_when_queue_is_deep(
    mapped_function: Callable[..., MappedFunction], recorded_calls: list[Call]
) -> None:
    function = mapped_function(batch_size=1, maximum_concurrency=2)
    function.send(*({"n": n, "sleep": 0.3} for n in range(8)))
    with polling(function) as poller:
        assert poller.run_until(lambda: len(recorded_calls) == 8, timeout=15)
        stats = poller.stats().functions[function.name]
    assert stats.peak_concurrency == 2
    assert len({c.thread for c in recorded_calls}) == 2
    assert all(len(c.message_ids) == 1 for c in recorded_calls)


@pytest.mark.parametrize(("time_scale", "batches"), [(1.0, 1), (10.0, 2)])
def test_batching_window_opens_with_the_first_message_and_scales_with_a_load_test(
    mapped_function: Callable[..., MappedFunction],
    recorded_calls: list[Call],
    time_scale: float,
    batches: int,
) -> None:
    """Lambda gathers for up to the window after a batch's first record; a load test at 10 x waits a
    tenth of it, as its other deadlines (a whole second was ten real ones at every hand-off)."""
    function = mapped_function(window=2)
    # One container, so one poller: no other poller's receive takes the second message.
    boto3.client("lambda").put_function_concurrency(
        FunctionName=function.name, ReservedConcurrentExecutions=1
    )
    with polling(function, time_scale=time_scale) as poller:
        sent = function.send({"n": 1})
        time.sleep(0.8)
        sent += function.send({"n": 2})
        assert poller.run_until(lambda: {i for c in recorded_calls for i in c.message_ids} >= set(sent), 30)
    assert len(recorded_calls) == batches


def test_remaining_time_counts_down_from_function_timeout(
    mapped_function: Callable[..., MappedFunction], recorded_calls: list[Call]
) -> None:
    function = mapped_function(timeout=5)
    function.send({"sleep": 0.5})
    with polling(function) as poller:
        assert poller.run_until(lambda: len(recorded_calls) == 1, timeout=10)
    call = recorded_calls[0]
    assert 4_000 < call.remaining_ms_at_start <= 5_000
    assert 400 <= call.remaining_ms_at_start - call.remaining_ms_after_sleep < 1_000


def test_batch_stays_on_queue_when_invocation_exceeds_timeout(
    mapped_function: Callable[..., MappedFunction], recorded_calls: list[Call]
) -> None:
    function = mapped_function(timeout=1, visibility_timeout=30)
    function.send({"sleep": 1.5})
    with polling(function) as poller:
        assert poller.run_until(lambda: poller.stats().functions[function.name].timed_out == 1, timeout=5)
        assert poller.run_until(lambda: len(recorded_calls) == 1, timeout=5), "the handler ran on"
        stats = poller.stats().functions[function.name]
        assert function.depth() == 1, "a timed-out batch is not deleted"
    assert stats.succeeded == 0
    assert stats.last_error == "timed out after 1 s"


def test_warm_container_reuses_its_thread_and_loop_when_invoked_again(
    mapped_function: Callable[..., MappedFunction], recorded_calls: list[Call]
) -> None:
    function = mapped_function(maximum_concurrency=2)
    with polling(function) as poller:
        for n in range(3):
            function.send({"n": n})
            assert poller.run_until(lambda n=n: len(recorded_calls) == n + 1, timeout=10)
            time.sleep(0.05)  # let the container go back to the pool
        stats = poller.stats().functions[function.name]
    assert len({(c.thread, c.loop) for c in recorded_calls}) == 1
    assert stats.cold_starts == 1


def test_containers_are_torn_down_when_poller_stops(
    mapped_function: Callable[..., MappedFunction], recorded_calls: list[Call]
) -> None:
    poller_test_handlers.closed_loops.clear()
    function = mapped_function()
    function.send({"n": 1})
    with polling(function) as poller:
        assert poller.run_until(lambda: len(recorded_calls) == 1, timeout=10)
    assert poller_test_handlers.closed_loops == [recorded_calls[0].loop]


def test_function_environment_is_in_process_environment_when_handlers_run(
    mapped_function: Callable[..., MappedFunction], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLLER_TEST_SETTING", "before")  # restored after the test
    function = mapped_function(environment={"POLLER_TEST_SETTING": "from-template"})
    with polling(function):
        assert os.environ["POLLER_TEST_SETTING"] == "from-template"


def _invocation(outcome: str, response: object, ids: list[str]) -> Invocation:
    context = EmulatedContext(
        function_name="f", function_arn="arn", memory_limit_in_mb=128, timeout_seconds=3
    )
    invocation = Invocation(
        event={}, context=context, messages=[{"MessageId": i} for i in ids], on_finish=lambda _: None
    )
    invocation.finish(outcome, response=response)  # type: ignore[arg-type]
    return invocation


_MAPPING = MappingConfig(
    uuid="u",
    queue_arn="arn:aws:sqs:us-east-1:1:q",
    queue_url="url",
    function_name="f",
    batch_size=10,
    batching_window_seconds=0,
    maximum_concurrency=None,
    report_batch_item_failures=True,
)


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, {"a", "b"}),
        ({"batchItemFailures": [{"identifier": "b"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}, {"a", "b"}),
        ("not a dict", {"a", "b"}),
    ],
)
def test_failed_records_follow_lambda_rules_when_response_is(response: object, failed: set[str]) -> None:
    assert failed_message_ids(_MAPPING, _invocation("succeeded", response, ["a", "b"])) == failed


def test_partial_response_is_ignored_when_mapping_does_not_report_item_failures() -> None:
    mapping = dataclasses.replace(_MAPPING, report_batch_item_failures=False)
    response = {"batchItemFailures": [{"itemIdentifier": "b"}]}
    assert failed_message_ids(mapping, _invocation("succeeded", response, ["a", "b"])) == set()


def test_whole_batch_fails_when_handler_raised() -> None:
    assert failed_message_ids(_MAPPING, _invocation("failed", None, ["a", "b"])) == {"a", "b"}
