"""A failed page record's delay before it comes back (handlers/retry_later.py); the SQS side runs in
tests/pipeline/test_handlers.py."""

from __future__ import annotations

from vanta_vuln_sync.handlers.retry_later import MAX_VISIBILITY_SECONDS, retry_delay


def test_the_delay_grows_fourfold_for_four_receives_then_holds_until_the_dlq_takes_the_record() -> None:
    assert [retry_delay(60, n) for n in range(1, 7)] == [60, 240, 960, 3840, 3840, 3840]
    # (a receive count SQS did not send is the first receive)
    assert retry_delay(60, 0) == 60


def test_the_delay_never_passes_sqs_largest_visibility_timeout() -> None:
    assert retry_delay(1000, 5) == MAX_VISIBILITY_SECONDS
