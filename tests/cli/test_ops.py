"""`vuln-sync resync | status | redrive` against the real template deployed into moto."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from aiobotocore.session import get_session

from vanta_vuln_sync.cli import main
from vanta_vuln_sync.local.embedded_aws import EmbeddedStack
from vanta_vuln_sync.local.world import UNREACHED_VANTA, World
from vanta_vuln_sync.messages import SYNC_RESOURCES, PageRange
from vanta_vuln_sync.simulator import SimulatorConfig
from vanta_vuln_sync.store.state import RunState, RunStore
from vanta_vuln_sync.vanta.resources import RESOURCES

# moto re-reads the template on DescribeStacks and warns about each resource type it cannot create.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")


@pytest.fixture(scope="module")
def stack(moto_server: str) -> Iterator[EmbeddedStack]:
    """The real template in moto, deployed once for the module (no Vanta behind it)."""
    with World(vanta=UNREACHED_VANTA, endpoint_url=moto_server) as world:
        yield world.deploy(stack_name=f"ops-{uuid.uuid4().hex[:8]}")


@pytest.fixture(autouse=True)
def _aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)


def _drain(queue_url: str) -> list[dict[str, object]]:
    sqs = boto3.client("sqs")
    bodies = []
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("vuln-sync: error: ")
    assert "Traceback" not in err
    return lines[0]


def _create_run(stack: EmbeddedStack, run_id: str, *, failed: str | None = None) -> None:
    async def create() -> None:
        async with get_session().create_client("dynamodb") as ddb:
            store = RunStore(ddb, stack.outputs["StateTableName"])
            plan = [
                PageRange(
                    run_id=run_id,
                    resource="vulnerabilities",
                    shard=f"o{n:05d}",
                    filters={},
                    seq=0,
                    page_budget=5,
                )
                for n in range(3)
            ]
            await store.create_run(
                RunState(
                    run_id=run_id,
                    scope="all",
                    status="running",
                    started_at=datetime.now(UTC),
                    plan=plan,
                    modes={"vulnerabilities": "full"},
                    reason="test",
                )
            )
            if failed:
                await store.finish_run(run_id, "failed", failure=failed)

    asyncio.run(create())


def test_resync_enqueues_a_validated_request_when_filters_are_valid(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "resync",
            "--resource",
            "vulnerabilities",
            "--filter",
            "severity=critical",
            "--stack",
            stack.name,
            "--wait",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "sent SyncRequest" in out
    assert re.search(rf"vuln-sync status \S+ --stack {stack.name}$", out, re.MULTILINE), out
    [body] = _drain(stack.outputs["RequestQueueUrl"])
    assert body["type"] == "SyncRequest"
    assert body["resources"] == ["vulnerabilities"]
    assert body["mode"] == "incremental"
    assert body["filters"] == {
        "vulnerabilities": {"severity": "CRITICAL", "includeVulnerabilitiesWithoutSlas": "true"}
    }


def test_resync_sends_every_resource_named_and_applies_a_filter_to_each_unless_qualified(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["resync", "-r", "vulnerable-assets,vulnerabilities", "-r", "vulnerability-remediations"]
    filters = ["--filter", "integrationId=snyk", "--filter", "vulnerable-assets:assetType=server"]
    assert main([*argv, *filters, "--stack", stack.name, "--wait", "0"]) == 0
    assert "scope vulnerabilities.vulnerability-remediations.vulnerable-assets_" in capsys.readouterr().out
    [body] = _drain(stack.outputs["RequestQueueUrl"])
    assert body["resources"] == ["vulnerabilities", "vulnerability-remediations", "vulnerable-assets"]
    assert body["filters"] == {
        "vulnerabilities": {"integrationId": "snyk", "includeVulnerabilitiesWithoutSlas": "true"},
        "vulnerability-remediations": {"integrationId": "snyk"},
        "vulnerable-assets": {"integrationId": "snyk", "assetType": "SERVER"},
    }


def test_resync_without_a_resource_sends_the_schedules_full_sync(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resync", "--full", "--stack", stack.name, "--wait", "0"]) == 0
    assert "; full; scope all)" in capsys.readouterr().out
    [body] = _drain(stack.outputs["RequestQueueUrl"])
    assert body["resources"] == ["vulnerabilities", "vulnerability-remediations", "vulnerable-assets"]
    assert body["mode"] == "full"
    assert body.get("filters", {}) == {}


def test_resync_sends_full_mode_when_full_is_given(stack: EmbeddedStack) -> None:
    assert (
        main(["resync", "--resource", "vulnerable-assets", "--full", "--stack", stack.name, "--wait", "0"])
        == 0
    )
    [body] = _drain(stack.outputs["RequestQueueUrl"])
    assert body["mode"] == "full"
    assert body["reason"] == "manual resync"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["resync", "--resource", "vulns"], "unknown resource 'vulns'"),
        (["resync", "--resource", "vulnerabilities", "--filter", "severty=HIGH"], "severty"),
        (["resync", "--resource", "vulnerabilities", "--filter", "severity=URGENT"], "URGENT"),
        (["resync", "--resource", "vulnerabilities", "--filter", "severity"], "NAME=VALUE"),
        (
            ["resync", "-r", "vulnerabilities,vulnerable-assets", "--filter", "severity=HIGH"],
            "vulnerable-assets has no filter 'severity'",
        ),
        (
            ["resync", "-r", "vulnerabilities", "--filter", "vulnerable-assets:assetType=SERVER"],
            "not among the resources synced",
        ),
        (["redrive", "--queue", "pages"], "--queue must be request, page or finalize"),
    ],
)
def test_bad_input_gets_one_error_line_and_nothing_is_sent(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main([*argv, "--stack", stack.name])
    assert code == 2
    assert message in _one_error_line(capsys.readouterr().err)
    assert _drain(stack.outputs["RequestQueueUrl"]) == []


def test_unknown_stack_gets_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--stack", "no-such-stack"]) == 2
    assert "stack 'no-such-stack' does not exist" in _one_error_line(capsys.readouterr().err)


def test_missing_stack_name_gets_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["redrive"]) == 2
    assert "VULN_SYNC_STACK" in _one_error_line(capsys.readouterr().err)


def test_missing_credentials_get_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["status", "--stack", "any"]) == 2
    assert "no AWS credentials" in _one_error_line(capsys.readouterr().err)


def test_status_shows_progress_when_run_is_running(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:10]}"
    _create_run(stack, run_id)
    code = main(["status", run_id, "--stack", stack.name])
    out = capsys.readouterr().out
    assert code == 0
    assert f"run          {run_id}" in out or run_id in out.splitlines()[0]
    assert "running" in out
    assert "0 / 3" in out


def test_status_shows_the_fleets_requests_as_the_rate_limiter_grants_them(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a running run that has committed no step yet, while workers hold 37 request slots...
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:10]}"
    _create_run(stack, run_id)
    ddb, table = boto3.client("dynamodb"), stack.outputs["StateTableName"]
    key = {"pk": {"S": "rate#vanta"}, "sk": {"S": "rate"}}
    ddb.put_item(
        TableName=table,
        Item={
            **key,
            "next_slot": {"N": f"{time.time() + 30:.6f}"},
            "reserved": {"N": "37"},
            "throttled": {"N": "2"},
            "per_minute": {"N": "50"},
        },
    )
    try:
        code = main(["status", run_id, "--stack", stack.name])
    finally:
        ddb.delete_item(TableName=table, Key=key)  # the module's other runs start from a fresh limiter
    out = capsys.readouterr().out
    assert code == 0
    # ...status shows them, and that the limiter is busy, though no step has committed a count.
    assert re.search(r"requests / retries / 429s \(committed\)\s+0 / 0 / 0", out)
    assert "37 request slots granted, 2 429s, cut to 50/min after 429s" in out
    ahead = re.search(r"busy at the limit \(50/min\): request slots booked (\d+) s ahead", out)
    assert ahead
    assert 15 <= int(ahead.group(1)) <= 30


def test_status_latest_is_the_last_successful_full_sync_and_lists_the_runs_since(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a full sync that succeeded, a newer one running, and a newest run...
    succeeded = f"20000101T000000Z-{uuid.uuid4().hex[:10]}"
    running = f"20000102T000000Z-{uuid.uuid4().hex[:10]}"
    resync = f"29991231T235959Z-{uuid.uuid4().hex[:10]}"
    for run_id in (succeeded, running, resync):
        _create_run(stack, run_id)

    async def record_scope() -> None:
        async with get_session().create_client("dynamodb") as ddb:
            store = RunStore(ddb, stack.outputs["StateTableName"])
            assert await store.claim_scope("all", succeeded, stale_after=3600)
            await store.release_scope("all", succeeded, {"vulnerabilities": 3}, started_at=datetime.now(UTC))
            assert await store.claim_scope("all", running, stale_after=3600)

    asyncio.run(record_scope())
    # ...`latest` is the full sync that succeeded, said as such, with the newest runs listed after it.
    assert main(["status", "--stack", stack.name]) == 0
    out = capsys.readouterr().out
    assert out.startswith("latest: the last successful full sync (scope all)\n")
    assert re.search(rf"^run +{succeeded}$", out, re.MULTILINE), out
    assert re.search(r"^scope +all$", out, re.MULTILINE), out
    since = out.split(f"runs since, of any scope (vuln-sync status RUN --stack {stack.name}):\n")[1]
    assert re.search(rf"^  {resync}  running +scope all  \(test\)$", since, re.MULTILINE), out


def test_status_exits_1_and_says_why_when_run_failed(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:10]}"
    _create_run(stack, run_id, failed="vulnerabilities/o00001 step 0: Vanta refused (403)")
    assert main(["status", run_id, "--stack", stack.name]) == 1
    assert "Vanta refused (403)" in capsys.readouterr().out


def test_status_of_unknown_run_gets_one_error_line(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "20200101T000000Z-nosuchrun0", "--stack", stack.name]) == 2
    assert "no run '20200101T000000Z-nosuchrun0'" in _one_error_line(capsys.readouterr().err)


def test_redrive_moves_dlq_messages_back_when_confirmed(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs")
    for n in range(3):
        sqs.send_message(
            QueueUrl=stack.outputs["PageDLQUrl"],
            MessageBody=json.dumps({"n": n}),
            MessageAttributes={"reason": {"DataType": "String", "StringValue": f"reason {n}"}},
        )
    assert main(["redrive", "--queue", "page", "--yes", "--stack", stack.name]) == 0
    out = capsys.readouterr().out
    assert "PageDLQ holds 3 message(s)" in out
    assert "reason 1" in out
    assert sorted(b["n"] for b in _drain(stack.outputs["PageQueueUrl"])) == [0, 1, 2]  # type: ignore[type-var]
    assert _drain(stack.outputs["PageDLQUrl"]) == []


def test_redrive_refuses_without_yes_when_not_on_a_terminal(
    stack: EmbeddedStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # noqa: SIM115 - closed with the test
    boto3.client("sqs").send_message(QueueUrl=stack.outputs["RequestDLQUrl"], MessageBody="{}")
    try:
        assert main(["redrive", "--queue", "request", "--stack", stack.name]) == 2
        assert "--yes" in _one_error_line(capsys.readouterr().err)
        assert len(_drain(stack.outputs["RequestDLQUrl"])) == 1, "nothing was moved"
    finally:
        import sys

        sys.stdin.close()


def test_redrive_says_so_when_dlq_is_empty(stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["redrive", "--queue", "request", "--stack", stack.name]) == 0
    assert "RequestDLQ is empty" in capsys.readouterr().out


@pytest.fixture
def running_stack(moto_server: str) -> Iterator[EmbeddedStack]:
    """A stack whose functions run (poller emulation) against a small simulator."""
    with World(SimulatorConfig(vulnerabilities=200), endpoint_url=moto_server) as world:
        world.deploy(
            {"VantaRateLimitPerMinute": 1000, "LogLevel": "ERROR"},
            stack_name=f"ops-run-{uuid.uuid4().hex[:8]}",
        )
        world.start_poller(failed_visibility_timeout=None)
        yield world.stack


@pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
def test_resync_prints_the_run_id_then_a_second_request_joins_it_when_the_scheduler_runs(
    running_stack: EmbeddedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "resync",
        "--resource",
        "vulnerabilities",
        "--filter",
        "severity=HIGH",
        "--stack",
        running_stack.name,
    ]
    assert main(argv) == 0
    first = capsys.readouterr().out
    run_id = re.search(r"run (\S+) planned", first)
    assert run_id, first
    assert main(argv) == 0
    assert f"joined run {run_id.group(1)}" in capsys.readouterr().out
    for _ in range(60):  # the run finishes in seconds; status follows it there
        assert main(["status", run_id.group(1), "--stack", running_stack.name]) == 0
        status = capsys.readouterr().out
        if "succeeded" in status:
            break
        time.sleep(0.5)
    assert re.search(r"^status +succeeded$", status, re.MULTILINE), status
    assert re.search(r"^  vulnerabilities +1 ranges done, 0 open$", status, re.MULTILINE), status
    # The limiter's live totals: the run's requests (planning and fetching) took slots from it.
    assert re.search(r"^Vanta rate limiter +(busy|idle):", status, re.MULTILINE), status


@pytest.mark.parametrize("command", ["resync", "status", "redrive", "report", "local", "fetch"])
def test_help_shows_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"vuln-sync {command} " in capsys.readouterr().out.split("examples:")[1]


@pytest.mark.parametrize(("command", "resources"), [("resync", SYNC_RESOURCES), ("fetch", tuple(RESOURCES))])
def test_help_lists_every_resource_and_filter_the_command_takes(
    command: str, resources: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    listed = capsys.readouterr().out.split("resources and their filters")[1]
    sections = dict(re.findall(r"^  (\S+)\n((?:      .*\n)+)", listed, re.MULTILINE))
    assert list(sections) == list(resources)
    for resource in resources:
        named = set(re.findall(r"(\w+)(?==|,|$)", " ".join(sections[resource].split())))
        assert set(RESOURCES[resource].filters) <= named, resource
    assert "severity=CRITICAL|HIGH|MEDIUM|LOW" in listed
