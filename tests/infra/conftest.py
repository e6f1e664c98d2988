"""Fixtures for the infrastructure tests: template.yaml transformed offline, and deployed into moto server."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from vanta_vuln_sync.local.template import deploy_to_moto, transform_template

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
REGION = "us-east-1"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:vanta-vuln-sync/vanta-AbCdEf"
PARAMETERS = {"VantaSecretArn": SECRET_ARN}
CODE_URI = "s3://infra-rehearsal-code/vanta-vuln-sync.zip"


class Template:
    """A transformed (plain CloudFormation) template with lookups the tests share."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.resources: dict[str, dict[str, Any]] = document["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.resources.items() if r["Type"] == resource_type}

    def props(self, logical_id: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.resources[logical_id]["Properties"]
        return properties

    def parameter_default(self, name: str) -> Any:
        return self.document["Parameters"][name]["Default"]

    def resolve(self, value: Any, parameters: dict[str, Any] | None = None) -> Any:
        """A `Ref` to a parameter, resolved to the given value or the default; anything else unchanged."""
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in self.document["Parameters"]:
            name = value["Ref"]
            return (parameters or {}).get(name, self.parameter_default(name))
        return value

    def mapping_for(self, function: str) -> dict[str, Any]:
        (mapping,) = [
            m["Properties"]
            for m in self.of_type("AWS::Lambda::EventSourceMapping").values()
            if m["Properties"]["FunctionName"] == {"Ref": function}
        ]
        return mapping


@pytest.fixture(scope="session")
def cfn() -> Template:
    """template.yaml after the SAM transform, with default parameters."""
    return Template(transform_template(TEMPLATE, CODE_URI, PARAMETERS, region=REGION))


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class Rehearsal:
    """The stack created in moto server: its outputs, physical ids and clients to read it back."""

    def __init__(self, endpoint: str, stack_name: str, outputs: dict[str, str]) -> None:
        self.endpoint = endpoint
        self.outputs = outputs
        self.sqs = _client("sqs", endpoint)
        self.dynamodb = _client("dynamodb", endpoint)
        self.s3 = _client("s3", endpoint)
        self.awslambda = _client("lambda", endpoint)
        summaries = _client("cloudformation", endpoint).list_stack_resources(StackName=stack_name)
        self.physical_ids = {
            s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries["StackResourceSummaries"]
        }

    @property
    def function_names(self) -> tuple[str, str, str]:
        return (
            self.outputs["SchedulerFunctionName"],
            self.outputs["WorkerFunctionName"],
            self.outputs["FinalizeFunctionName"],
        )

    def queue_attributes(self, output: str) -> dict[str, str]:
        attributes: dict[str, str] = self.sqs.get_queue_attributes(
            QueueUrl=self.outputs[output], AttributeNames=["All"]
        )["Attributes"]
        return attributes


@pytest.fixture(scope="session")
def rehearsal(moto_server: str, cfn: Template) -> Rehearsal:
    """Given the transformed template, when moto's CloudFormation creates it, then this reads it back."""
    s3 = _client("s3", moto_server)
    bucket, key = CODE_URI.removeprefix("s3://").split("/", 1)
    s3.create_bucket(Bucket=bucket)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("vanta_vuln_sync/__init__.py", "")
    s3.put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    stack_name = "infra-rehearsal"
    outputs = deploy_to_moto(
        _client("cloudformation", moto_server),
        cfn.document,
        stack_name,
        PARAMETERS,
        dynamodb_client=_client("dynamodb", moto_server),
        s3_client=s3,
    )
    return Rehearsal(moto_server, stack_name, outputs)
