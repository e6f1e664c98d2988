"""The deploy rehearsal: what `sam deploy` does after packaging, against the embedded AWS.

`sam deploy` uploads the packaged template to its artifacts bucket, creates a change set from the
template's URL, executes it and waits for the stack. Pointed at moto server three things stop it
(found by trying `nox -s deploy` with `AWS_ENDPOINT_URL` set):

1. moto resolves a change set's `TemplateURL` by its host name: `localhost` or an `s3…amazonaws.com`
   host means path style (`/<bucket>/<key>`); any other host is read as a virtual-hosted bucket, so
   `http://127.0.0.1:PORT/<bucket>/<key>` (the URL sam forms from the endpoint) asks for bucket `127`:
   NoSuchBucket. `rehearsal_endpoint` names the same server `localhost`.
2. `resolve_s3` creates sam's managed stack (`aws-sam-cli-managed-default`) and then checks it in ways
   moto does not answer: give sam an existing bucket (`--s3-bucket`) instead.
3. moto's CloudFormation does not run the `AWS::Serverless-2016-10-31` transform (CloudFormation runs it
   in AWS): the SAM resources would be skipped. The template is transformed here first, with the same
   `samtranslator` CloudFormation uses (`template.transform_template`).

`nox -s deploy` with `AWS_ENDPOINT_URL` set runs the real sam CLI with the three fixed: `bucket`
below, `sam package` (the code uploaded), `transform` below (the packaged template transformed offline
and its mappings created disabled), then `sam deploy` of that template (upload, change set from its URL,
execute, stack created). `deploy_by_change_set` makes the same CloudFormation and S3 calls as that last
`sam deploy`, for the tests, which have no sam CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from vanta_vuln_sync.local.template import TemplateError, load_template, prepare_for_moto, transform_template

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_s3 import S3Client

REHEARSAL_BUCKET = "vuln-sync-rehearsal-artifacts"
REHEARSAL_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:vuln-sync-rehearsal/vanta"  # noqa: S105 - an ARN, no secret
_TERMINAL = {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "FAILED"}


class RehearsalError(RuntimeError):
    """A step of the rehearsal failed; the message says which and why."""


def rehearsal_endpoint(endpoint_url: str) -> str:
    """The same loopback endpoint named `localhost`, so moto reads template URLs on it path style."""
    parts = urlsplit(endpoint_url)
    if parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise RehearsalError(f"the rehearsal runs against a loopback moto server, not {endpoint_url}")
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"localhost{port}", parts.path, "", ""))


def template_url(endpoint_url: str, bucket: str, key: str) -> str:
    """The URL `sam deploy` hands CloudFormation for an uploaded template on a custom endpoint."""
    return f"{endpoint_url.rstrip('/')}/{bucket}/{key}"


def deploy_by_change_set(
    *,
    cfn: CloudFormationClient,
    s3: S3Client,
    endpoint_url: str,
    bucket: str,
    document: Mapping[str, Any],
    stack_name: str,
    parameters: Mapping[str, str],
    timeout: float = 60.0,
) -> dict[str, str]:
    """What `sam deploy` does with a packaged template: upload it to `bucket`, create a CREATE change set
    from its URL on `endpoint_url`, execute it, wait for the stack. Returns the stack's resources
    (logical id to physical id). Raises RehearsalError when the change set or the stack fails."""
    key = f"rehearsal/{stack_name}-{int(time.time())}.template"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())
    change_set = cfn.create_change_set(
        StackName=stack_name,
        ChangeSetName=f"rehearsal-{int(time.time())}",
        ChangeSetType="CREATE",
        TemplateURL=template_url(endpoint_url, bucket, key),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    _wait(lambda: _change_set_status(cfn, change_set["Id"]), "CREATE_COMPLETE", timeout, "change set")
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    _wait(lambda: _stack_status(cfn, stack_name), "CREATE_COMPLETE", timeout, f"stack {stack_name}")
    return stack_resources(cfn, stack_name)


def stack_resources(cfn: CloudFormationClient, stack_name: str) -> dict[str, str]:
    """The resources moto created for the stack: logical id to physical id (types it skips left out).

    Read from the resources, not the stack's Outputs: moto leaves Outputs empty on a stack created
    through a change set (it builds them when the stack is made, before the change set gives it a
    template), which `sam deploy` always uses."""
    return {
        str(summary["LogicalResourceId"]): str(summary["PhysicalResourceId"])
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name)
        for summary in page["StackResourceSummaries"]
        if summary.get("ResourceType") and summary.get("PhysicalResourceId")
    }


def _change_set_status(cfn: CloudFormationClient, change_set_id: str) -> str:
    described = cfn.describe_change_set(ChangeSetName=change_set_id)
    reason = described.get("StatusReason")
    return (
        f"{described['Status']}: {reason}"
        if reason and described["Status"] == "FAILED"
        else described["Status"]
    )


def _stack_status(cfn: CloudFormationClient, stack_name: str) -> str:
    return str(cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"])


def _wait(read: Any, done: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = str(read())
        if status == done:
            return
        if status.split(":")[0] in _TERMINAL or time.monotonic() > deadline:
            raise RehearsalError(f"{what} is {status}")
        time.sleep(0.2)


def packaged_code_uri(packaged: Mapping[str, Any]) -> str:
    """The `s3://` code location `sam package` wrote into the template (one package for every function)."""
    uris = {
        str(
            resource.get("Properties", {}).get("CodeUri")
            or packaged.get("Globals", {}).get("Function", {}).get("CodeUri")
        )
        for resource in packaged["Resources"].values()
        if resource.get("Type") == "AWS::Serverless::Function"
    }
    if len(uris) != 1 or not next(iter(uris)).startswith("s3://"):
        raise RehearsalError(f"expected one s3:// CodeUri from `sam package`, found {sorted(uris)}")
    return uris.pop()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m vanta_vuln_sync.local.rehearsal bucket | transform`: the two steps `nox -s deploy` runs
    between the sam CLI's, against the moto server at $AWS_ENDPOINT_URL."""
    import boto3
    from botocore.exceptions import ClientError

    parser = argparse.ArgumentParser(prog="python -m vanta_vuln_sync.local.rehearsal")
    steps = parser.add_subparsers(dest="step", required=True)
    bucket = steps.add_parser("bucket", help="create the artifacts bucket sam uploads to")
    bucket.add_argument("--bucket", default=REHEARSAL_BUCKET)
    transform = steps.add_parser("transform", help="the packaged template as plain CloudFormation for moto")
    transform.add_argument("--packaged", type=Path, required=True)
    transform.add_argument("--output", type=Path, required=True)
    transform.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE")
    verify = steps.add_parser("verify", help="check the deployed stack has what the pipeline needs")
    verify.add_argument("--stack-name", required=True)
    args = parser.parse_args(argv)
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        rehearsal_endpoint(endpoint)
        if args.step == "bucket":
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region)
            try:
                s3.create_bucket(Bucket=args.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                    raise
            print(f"artifacts bucket {args.bucket} on {endpoint}")
            return 0
        if args.step == "verify":
            cfn = boto3.client("cloudformation", endpoint_url=endpoint, region_name=region)
            return _verify(cfn, args.stack_name)
        parameters = dict(p.split("=", 1) for p in args.parameter)
        parameters.setdefault("VantaSecretArn", REHEARSAL_SECRET_ARN)
        code_uri = packaged_code_uri(load_template(args.packaged))
        document = prepare_for_moto(transform_template(args.packaged, code_uri, parameters, region=region))
        args.output.write_text(json.dumps(document, indent=1))
        print(f"{args.output}: {len(document['Resources'])} resources, code at {code_uri}")
        return 0
    except (RehearsalError, TemplateError) as exc:
        print(f"rehearsal: error: {exc}", file=sys.stderr)
        return 2


# What the pipeline cannot run without (logical ids in the transformed template).
REQUIRED_RESOURCES = (
    "RequestQueue",
    "PageQueue",
    "RequestDLQ",
    "PageDLQ",
    "StateTable",
    "DataBucket",
    "SchedulerFunction",
    "WorkerFunction",
    "SchedulerFunctionRequests",
    "WorkerFunctionPages",
)


def _verify(cfn: CloudFormationClient, stack_name: str) -> int:
    status = _stack_status(cfn, stack_name)
    resources = stack_resources(cfn, stack_name)
    missing = [name for name in REQUIRED_RESOURCES if name not in resources]
    print(f"stack {stack_name}: {status}, {len(resources)} resources created by moto")
    for name in REQUIRED_RESOURCES:
        print(f"  {name:<28} {resources.get(name, 'MISSING')}")
    if status != "CREATE_COMPLETE" or missing:
        print(f"rehearsal: error: {status}; missing {', '.join(missing) or 'nothing'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
