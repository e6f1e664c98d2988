"""The deploy rehearsal's own steps, without the sam CLI: the packaged template transformed offline
(`rehearsal transform`), then created as `sam deploy` creates it (upload, change set from the template's
URL, execute) in moto server, and why the rehearsal names the server `localhost`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from vanta_vuln_sync.local.embedded_aws import package_code
from vanta_vuln_sync.local.rehearsal import (
    REQUIRED_RESOURCES,
    deploy_by_change_set,
    main,
    rehearsal_endpoint,
    template_url,
)

from .conftest import TEMPLATE

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rehearsal"


@pytest.fixture
def packaged(tmp_path: Path, moto_server: str) -> tuple[Path, str]:
    """template.yaml as `sam package` leaves it: the code zip uploaded to an artifacts bucket and every
    CodeUri its s3:// URI (the template stays YAML)."""
    bucket = f"rehearsal-artifacts-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="rehearsal/code.zip", Body=package_code())
    code_uri = f"s3://{bucket}/rehearsal/code.zip"
    path = tmp_path / "packaged.yaml"
    path.write_text(TEMPLATE.read_text().replace("CodeUri: src/", f"CodeUri: {code_uri}"))
    return path, code_uri


@pytest.fixture
def transformed(
    packaged: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto_server: str
) -> tuple[dict[str, Any], str]:
    """The rehearsal's transform step run on `packaged` against moto server: the plain CloudFormation
    document it wrote, and the code's s3:// URI."""
    path, code_uri = packaged
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)  # the rehearsal CLI's one way to be pointed
    output = tmp_path / "transformed.json"
    assert main(["transform", "--packaged", str(path), "--output", str(output)]) == 0
    return json.loads(output.read_text()), code_uri


def test_transform_step_writes_plain_cloudformation_with_the_packaged_code_and_mappings_disabled(
    transformed: tuple[dict[str, Any], str],
) -> None:
    document, code_uri = transformed
    types = {r["Type"] for r in document["Resources"].values()}
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    bucket, key = code_uri.removeprefix("s3://").split("/", 1)
    for name in ("SchedulerFunction", "WorkerFunction"):
        assert document["Resources"][name]["Properties"]["Code"] == {"S3Bucket": bucket, "S3Key": key}
    for name in ("SchedulerFunctionRequests", "WorkerFunctionPages"):
        assert document["Resources"][name]["Properties"]["Enabled"] is False


def test_rehearsal_refuses_an_endpoint_that_is_not_loopback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.eu-west-1.amazonaws.com")
    assert main(["bucket"]) == 2
    assert "loopback moto server" in capsys.readouterr().err


# moto takes ~35 s to make a change set of this template from a URL (~3 s from a body): not in `nox -s tests`.
@pytest.mark.slow
def test_change_set_from_the_template_url_creates_every_resource_the_pipeline_needs(
    transformed: tuple[dict[str, Any], str], moto_server: str
) -> None:
    # Given the transformed template and an artifacts bucket on the server named localhost...
    document, code_uri = transformed
    endpoint = rehearsal_endpoint(moto_server)
    assert endpoint.startswith("http://localhost:")
    s3 = boto3.client("s3", endpoint_url=endpoint)
    bucket = code_uri.removeprefix("s3://").split("/", 1)[0]
    stack_name = f"rehearsal-{uuid.uuid4().hex[:8]}"
    # When it is deployed as `sam deploy` deploys (upload, change set from the URL, execute)...
    resources = deploy_by_change_set(
        cfn=boto3.client("cloudformation", endpoint_url=endpoint),
        s3=s3,
        endpoint_url=endpoint,
        bucket=bucket,
        document=document,
        stack_name=stack_name,
        parameters={"VantaSecretArn": SECRET},
    )
    # Then the queues, table, bucket, both functions and both mappings exist, wired to each other.
    assert set(REQUIRED_RESOURCES) <= set(resources)
    awslambda = boto3.client("lambda", endpoint_url=endpoint)
    worker = awslambda.get_function_configuration(FunctionName=resources["WorkerFunction"])
    assert worker["Environment"]["Variables"]["PAGE_QUEUE_URL"] == resources["PageQueue"]
    (mapping,) = awslambda.list_event_source_mappings(FunctionName=resources["WorkerFunction"])[
        "EventSourceMappings"
    ]
    assert mapping["EventSourceArn"].endswith(resources["PageQueue"].rsplit("/", 1)[1])


def test_moto_reads_a_template_url_on_127_0_0_1_as_a_bucket_named_127(moto_server: str) -> None:
    """Why the rehearsal names the server localhost: this is the NoSuchBucket `sam deploy` met."""
    assert moto_server.startswith("http://127.0.0.1:")
    s3 = boto3.client("s3", endpoint_url=moto_server)
    bucket = f"rehearsal-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="t.json", Body=b'{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}')
    cfn = boto3.client("cloudformation", endpoint_url=moto_server)
    with pytest.raises(ClientError, match="NoSuchBucket"):
        cfn.create_change_set(
            StackName=f"s-{uuid.uuid4().hex[:8]}",
            ChangeSetName="c",
            ChangeSetType="CREATE",
            TemplateURL=template_url(moto_server, bucket, "t.json"),
        )
    created = cfn.create_change_set(
        StackName=f"s-{uuid.uuid4().hex[:8]}",
        ChangeSetName="c",
        ChangeSetType="CREATE",
        TemplateURL=template_url(rehearsal_endpoint(moto_server), bucket, "t.json"),
    )
    assert created["Id"]
