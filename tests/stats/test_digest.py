"""The run digest, published to an SNS topic in moto server and read back through a subscribed queue."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from vanta_vuln_sync.stats import send_digest

from .conftest import AWS_REGION, SESSION
from .helpers import get_text, sync_runs


@pytest.fixture
async def sns(moto_server: str) -> AsyncIterator[Any]:
    async with SESSION.create_client("sns", endpoint_url=moto_server, region_name=AWS_REGION) as client:
        yield client


@pytest.fixture
async def sqs(moto_server: str) -> AsyncIterator[Any]:
    async with SESSION.create_client("sqs", endpoint_url=moto_server, region_name=AWS_REGION) as client:
        yield client


@pytest.fixture
async def subscribed_topic(sns: Any, sqs: Any) -> tuple[str, str]:
    """A digest topic and a queue subscribed to it: (topic ARN, queue URL)."""
    name = f"digest-{uuid.uuid4().hex[:8]}"
    topic_arn = (await sns.create_topic(Name=name))["TopicArn"]
    queue_url = (await sqs.create_queue(QueueName=name))["QueueUrl"]
    queue_arn = (await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    await sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return topic_arn, queue_url


async def received(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    response = await sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(message["Body"]) for message in response.get("Messages", [])]


async def test_digest_is_published_with_changes_new_severe_findings_and_a_working_report_link(
    s3: Any, bucket: str, sns: Any, sqs: Any, subscribed_topic: tuple[str, str]
) -> None:
    # Given: two daily full runs of a tenant that changed in between
    first, second = await sync_runs(s3, bucket, runs=2, vulnerabilities=1500)
    topic_arn, queue_url = subscribed_topic

    # When
    sent = await send_digest(s3, bucket, second, topic_arn=topic_arn, sns=sns)

    # Then: one plain-text message with the numbers, their change, the picks and a link that works
    [envelope] = await received(sqs, queue_url)
    assert sent
    subject, body = envelope["Subject"], envelope["Message"]
    open_now, open_then = second["vulnerabilities"]["active"], first["vulnerabilities"]["active"]
    assert subject.startswith(f"Vulnerabilities {second['run']['as_of'][:10]}: {open_now:,} open")
    assert f"({open_now - open_then:+,})" in subject or open_now == open_then
    assert len(subject) <= 100
    assert f"Open{open_now:>19,}" in body
    overdue_now = second["vulnerabilities"]["sla"]["overdue"]
    overdue_change = overdue_now - first["vulnerabilities"]["sla"]["overdue"]
    assert f"Overdue{overdue_now:>16,} ({overdue_change:+,})" in body
    assert (
        f"{second['trend']['new']['total']:,} new, {second['trend']['resolved']['total']:,} resolved" in body
    )
    picks = second["findings"]["digest"]
    assert picks["new_critical_high"]["count"] > 0
    assert picks["newly_overdue"]["count"] > 0
    for name in ("new_critical_high", "newly_overdue"):
        assert all(row["vanta_url"] in body for row in picks[name]["rows"])
    assert f"NEW CRITICAL AND HIGH FINDINGS ({picks['new_critical_high']['count']:,})" in body
    assert f"BECAME OVERDUE SINCE THE PREVIOUS RUN ({picks['newly_overdue']['count']:,})" in body
    assert "EXCEPTIONS EXPIRING WITHIN 14 DAYS (0)\n  none" in body
    assert f"vuln-sync report --run {second['run']['id']}" in body
    link = next(line for line in body.splitlines() if "X-Amz-Expires=604800" in line)
    assert f"runs/{second['run']['id']}/report.html" in link
    with urllib.request.urlopen(link) as response:  # noqa: S310 - moto server on loopback
        page = response.read().decode()
    assert page == await get_text(s3, bucket, f"runs/{second['run']['id']}/report.html")
    assert all(len(line) <= 100 or line.startswith(("http", "           http")) for line in body.splitlines())


async def test_digest_is_not_sent_without_a_topic_or_for_a_partial_scope(
    s3: Any, bucket: str, sns: Any, sqs: Any, subscribed_topic: tuple[str, str]
) -> None:
    [stats] = await sync_runs(s3, bucket, runs=1, vulnerabilities=200, scope="integration=snyk")
    [full] = await sync_runs(s3, bucket, runs=1, vulnerabilities=200)
    topic_arn, queue_url = subscribed_topic

    assert not await send_digest(s3, bucket, stats, topic_arn=topic_arn, sns=sns)
    assert not await send_digest(s3, bucket, full, topic_arn=None, sns=sns)
    assert await received(sqs, queue_url) == []
    # A first run says there is nothing to compare with yet
    assert await send_digest(s3, bucket, full, topic_arn=topic_arn, sns=sns)
    [envelope] = await received(sqs, queue_url)
    assert "First run of this scope" in envelope["Message"]
    assert "(no previous run to compare with)" in envelope["Message"]


async def test_digest_failure_leaves_the_run_alone_when_the_topic_does_not_exist(
    s3: Any, bucket: str, sns: Any
) -> None:
    [full] = await sync_runs(s3, bucket, runs=1, vulnerabilities=200)
    missing = f"arn:aws:sns:{AWS_REGION}:123456789012:no-such-topic-{uuid.uuid4().hex[:6]}"

    assert not await send_digest(s3, bucket, full, topic_arn=missing, sns=sns)
