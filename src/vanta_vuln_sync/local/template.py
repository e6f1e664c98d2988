"""The real `template.yaml`, transformed offline and deployed into moto server's CloudFormation.

`transform_template` does what `sam package` + the `AWS::Serverless` transform do in AWS: function code
points at an `s3://` object and SAM resources become plain CloudFormation. `deploy_to_moto` creates the
stack in moto server and returns its outputs. Used by the embedded runtime and the infrastructure tests.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

# The repository's template (an editable install or a checkout; a wheel does not ship it).
DEFAULT_TEMPLATE_PATH = Path(__file__).resolve().parents[3] / "template.yaml"

# Resource types of template.yaml that moto's CloudFormation accepts but does not create (it logs
# "No Moto CloudFormation support" and goes on). Test these from the transformed template instead.
MOTO_SKIPPED_RESOURCE_TYPES = frozenset(
    {
        "AWS::CloudWatch::Alarm",
        "AWS::Glue::Database",
        "AWS::Glue::Table",
        "AWS::S3::BucketPolicy",
        "AWS::SQS::QueuePolicy",
        "AWS::SNS::Subscription",
        "AWS::Scheduler::Schedule",
    }
)

# SAM resolves managed policy names to ARNs through IAM's ListPolicies; offline we answer from this map.
# template.yaml gives every function its own role, so SAM needs none of these today: they are the ones
# SAM would attach to a role it generated (basic execution, X-Ray, SQS polling).
_AWS_MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for name, path in {
        "AWSLambdaBasicExecutionRole": "service-role/",
        "AWSXrayWriteOnlyAccess": "",
        "AWSLambdaSQSQueueExecutionRole": "service-role/",
        "CloudWatchLambdaInsightsExecutionRolePolicy": "",
    }.items()
}

_TERMINAL_FAILURES = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "ROLLBACK_IN_PROGRESS"}


class TemplateError(RuntimeError):
    """The template could not be loaded, transformed or deployed; the message says which step and why."""


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A YAML loader that reads CloudFormation short-form intrinsics (`!Ref`, `!Sub`, `!GetAtt`, ...).

    On libyaml's parser when PyYAML has it (its wheels do): the pure-Python one took 1.1 s of CPU for
    template.yaml, paid by every embedded deploy."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":  # `!GetAtt Resource.Attribute` is `[Resource, Attribute]`
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: str | Path = DEFAULT_TEMPLATE_PATH) -> dict[str, Any]:
    """The SAM template as a dict, short-form intrinsics in long form; raises TemplateError if unreadable.

    A fresh copy each call (callers edit it); the file is parsed again only when it changed."""
    try:
        stat = Path(path).stat()
        document = _parsed(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot load {path}: {exc}") from exc
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return copy.deepcopy(document)


@functools.lru_cache(maxsize=8)
def _parsed(path: str, mtime_ns: int, size: int) -> Any:
    """`path` parsed (the cache key carries its modification time and size, so an edit is seen)."""
    del mtime_ns, size
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader


def transform_template(
    path: str | Path, code_uri: str, parameters: Mapping[str, Any], *, region: str = "us-east-1"
) -> dict[str, Any]:
    """Plain CloudFormation from the SAM template, every function's code at `code_uri` (`s3://bucket/key`).

    `parameters` are the stack's parameter values (defaults fill the rest). Runs fully offline.
    Raises TemplateError when the URI is not `s3://` or the SAM transform rejects the template.
    """
    # Imported here: samtranslator and boto3 are laptop-side dependencies, never needed in Lambda.
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import (
        to_py27_compatible_template,
        undo_mark_unicode_str_in_template,
    )

    if not code_uri.startswith("s3://") or "/" not in code_uri[len("s3://") :]:
        raise TemplateError(f"code_uri must be s3://bucket/key, as `sam package` leaves it; got {code_uri!r}")
    template = load_template(path)
    _point_functions_at(template, code_uri)
    parameter_values: dict[str, Any] = {"AWS::Region": region, **parameters}
    to_py27_compatible_template(template, parameter_values)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    try:
        transformed = translator.translate(
            template, parameter_values=parameter_values, get_managed_policy_map=lambda: _AWS_MANAGED_POLICIES
        )
    except InvalidDocumentException as exc:
        reasons = "; ".join(str(cause) for cause in exc.causes)
        raise TemplateError(f"SAM transform rejected {path}: {reasons}") from exc
    result: dict[str, Any] = undo_mark_unicode_str_in_template(transformed)
    return result


def _point_functions_at(template: dict[str, Any], code_uri: str) -> None:
    globals_function = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in globals_function:
        globals_function["CodeUri"] = code_uri
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = code_uri


def prepare_for_moto(template: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a transformed template with its SQS event source mappings created disabled.

    moto's SQS runs an enabled mapping's function in Docker on every SendMessage; the embedded runtime
    polls the queues itself, reading each mapping's batch size, window and concurrency instead.
    """
    prepared = copy.deepcopy(dict(template))
    for resource in prepared.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Lambda::EventSourceMapping":
            resource.setdefault("Properties", {})["Enabled"] = False
    return prepared


def deploy_to_moto(
    cfn_client: CloudFormationClient,
    template_body: str | Mapping[str, Any],
    stack_name: str,
    parameters: Mapping[str, Any],
    *,
    dynamodb_client: DynamoDBClient | None = None,
    s3_client: S3Client | None = None,
    timeout: float = 60.0,
) -> dict[str, str]:
    """Create the stack in moto server and return its outputs (`{OutputKey: OutputValue}`).

    A dict template goes through `prepare_for_moto` first; a string is sent as it is. Given the DynamoDB
    and S3 clients, the table and bucket settings moto's CloudFormation ignores are applied afterwards
    (`apply_ignored_settings`). Raises TemplateError with the first failed resource's reason when the
    stack does not reach CREATE_COMPLETE.
    """
    template = template_body if isinstance(template_body, str) else prepare_for_moto(template_body)
    cfn_client.create_stack(
        StackName=stack_name,
        TemplateBody=template if isinstance(template, str) else json.dumps(template),
        Parameters=[{"ParameterKey": key, "ParameterValue": str(value)} for key, value in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    outputs = _wait_for_stack(cfn_client, stack_name, timeout)
    if dynamodb_client is not None and s3_client is not None:
        document = json.loads(template) if isinstance(template, str) else template
        apply_ignored_settings(document, cfn_client, stack_name, dynamodb_client, s3_client)
    return outputs


def _wait_for_stack(cfn_client: CloudFormationClient, stack_name: str, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        stack = cfn_client.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = str(stack["StackStatus"])
        if status == "CREATE_COMPLETE":
            return {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}
        if status in _TERMINAL_FAILURES or time.monotonic() > deadline:
            raise TemplateError(f"stack {stack_name} is {status}: {_first_failure(cfn_client, stack_name)}")
        time.sleep(0.2)


def _first_failure(cfn_client: CloudFormationClient, stack_name: str) -> str:
    events = cfn_client.describe_stack_events(StackName=stack_name).get("StackEvents", [])
    for event in reversed(events):
        if str(event.get("ResourceStatus", "")).endswith("FAILED"):
            return f"{event.get('LogicalResourceId')}: {event.get('ResourceStatusReason')}"
    return "no failed resource reported"


def apply_ignored_settings(
    template: Mapping[str, Any],
    cfn_client: CloudFormationClient,
    stack_name: str,
    dynamodb_client: DynamoDBClient,
    s3_client: S3Client,
) -> None:
    """Apply what moto's CloudFormation drops on the floor: table TTL; bucket versioning, public access
    block and lifecycle. The bucket policy is left out: moto would not enforce TLS over loopback anyway.
    """
    summaries = cfn_client.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    physical = {s["LogicalResourceId"]: s.get("PhysicalResourceId", "") for s in summaries}
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::DynamoDB::Table" and "TimeToLiveSpecification" in properties:
            dynamodb_client.update_time_to_live(
                TableName=physical[logical_id], TimeToLiveSpecification=properties["TimeToLiveSpecification"]
            )
        if resource.get("Type") == "AWS::S3::Bucket":
            _apply_bucket_settings(s3_client, physical[logical_id], properties)


def _apply_bucket_settings(s3_client: S3Client, bucket: str, properties: Mapping[str, Any]) -> None:
    if "VersioningConfiguration" in properties:
        s3_client.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": properties["VersioningConfiguration"]["Status"]}
        )
    if "PublicAccessBlockConfiguration" in properties:
        s3_client.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
        )
    rules = properties.get("LifecycleConfiguration", {}).get("Rules")
    if rules:
        s3_client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in rules]}
        )


def _lifecycle_rule(rule: Mapping[str, Any]) -> Any:
    """One lifecycle rule from CloudFormation's shape into the S3 API's."""
    api: dict[str, Any] = {"Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "Id" in rule:
        api["ID"] = rule["Id"]
    if "Transitions" in rule:
        api["Transitions"] = [
            {"Days": t["TransitionInDays"], "StorageClass": t["StorageClass"]} for t in rule["Transitions"]
        ]
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": rule["ExpirationInDays"]}
    for key in ("NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload"):
        if key in rule:
            api[key] = rule[key]
    return api
