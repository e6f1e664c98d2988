"""Least privilege: each function's role allows exactly the AWS actions that function uses, on its own
resources, and nothing else.

How "the actions a function uses" is derived, so that the test fails both when someone grants an action
no code needs and when code starts calling something its role lacks:

1. Recorded at run time, per function. `synced_stack` (conftest.py) runs a full sync of the real
   template in the embedded runtime with a botocore `before-call` hook on every client, plus a poison
   message on each queue (the DLQ path). Each Lambda container is a thread named after its function,
   so every call is attributed to the function whose code made it, with its parameters (queue URL,
   table, bucket and key, secret ARN). Calls the emulated Lambda service makes for a function (the SQS
   poller's receive/delete, boto3 rather than aiobotocore) are checked as platform actions.
2. Checked statically for completeness. Every AWS operation called anywhere in the modules the two
   handlers import (an AST scan for `<client>.<operation>(...)`, operation names from botocore's own
   service models) must have been recorded, and every recorded operation must be in the code. So a call
   on a path the sync does not exercise cannot hide: the scenario must be extended to cover it.
3. The roles are read from the SAM-transformed template (what CloudFormation deploys), with intrinsic
   functions resolved against the deployed stack, so resource scoping is checked too.

Besides what the code calls, a function's role needs what AWS does on its behalf (PLATFORM_ACTIONS),
and what IAM ties to a call's outcome: a GetObject answered 404 (the code handles a missing history
object) needs s3:ListBucket, without which S3 answers 403 instead.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

import vanta_vuln_sync
from vanta_vuln_sync.local.template import DEFAULT_TEMPLATE_PATH, load_template, transform_template

from .conftest import AwsCall, SyncedStack

FUNCTIONS = {"scheduler": "SchedulerFunction", "worker": "WorkerFunction", "finalize": "FinalizeFunction"}
HANDLER_MODULES = (
    "vanta_vuln_sync.handlers.scheduler",
    "vanta_vuln_sync.handlers.worker",
    "vanta_vuln_sync.handlers.finalize",
)
AWS_SERVICES = ("dynamodb", "kms", "s3", "secretsmanager", "sqs")
# What AWS itself does with a function's role: Lambda's SQS event source mapping polls the queue
# (ReceiveMessage, DeleteMessage, GetQueueAttributes: "Execution role permissions" in Lambda's SQS
# guide); the runtime writes the function's log stream; `Tracing: Active` sends X-Ray segments.
PLATFORM_ACTIONS = frozenset(
    {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
)
# API operations whose IAM action has another name (the rest are `<prefix>:<Operation>`).
IAM_ACTION_OF = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "s3:HeadObject": "s3:GetObject",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
    "dynamodb:TransactGetItems": "dynamodb:GetItem",
}
_TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


@dataclass(frozen=True)
class Statement:
    actions: frozenset[str]
    resources: tuple[str, ...]  # ARN patterns

    def allows(self, action: str, arn: str) -> bool:
        return any(fnmatch.fnmatchcase(action, a) for a in self.actions) and any(
            fnmatch.fnmatchcase(arn, r) for r in self.resources
        )


@dataclass(frozen=True)
class Role:
    function: str
    logical_id: str
    statements: tuple[Statement, ...]
    managed_policies: tuple[Any, ...]

    @property
    def actions(self) -> frozenset[str]:
        return frozenset(a for s in self.statements for a in s.actions)

    def allows(self, action: str, arn: str) -> bool:
        return any(s.allows(action, arn) for s in self.statements)


class _Resolver:
    """Intrinsic functions of the transformed template, resolved against the deployed stack."""

    def __init__(self, template: Mapping[str, Any], stack: SyncedStack) -> None:
        self.template = template
        self.stack = stack
        some_queue = next(iter(stack.queue_arns.values()))
        _, _, _, self.region, self.account, _ = some_queue.split(":", 5)
        defaults = {n: str(p.get("Default", "")) for n, p in template.get("Parameters", {}).items()}
        self.parameters = {**defaults, **stack.parameters}

    def arn(self, logical_id: str) -> str:
        kind = self.template["Resources"][logical_id]["Type"]
        physical = self.stack.resources[logical_id]
        if kind == "AWS::SQS::Queue":
            return self.stack.queue_arn(physical)
        if kind == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{physical}"
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{physical}"
        if kind == "AWS::Logs::LogGroup":
            return f"arn:aws:logs:{self.region}:{self.account}:log-group:{physical}:*"
        if kind == "AWS::KMS::Key":
            return (
                physical
                if physical.startswith("arn:")
                else f"arn:aws:kms:{self.region}:{self.account}:key/{physical}"
            )
        raise AssertionError(f"no ARN rule for {logical_id} ({kind}); extend the test")

    def value(self, node: Any) -> Any:
        if isinstance(node, str | int | float | bool):
            return node
        if isinstance(node, list):
            return [self.value(n) for n in node]
        (function, argument), *rest = node.items()
        assert not rest, f"not an intrinsic function: {node}"
        if function == "Fn::GetAtt":
            assert argument[1] == "Arn", argument
            return self.arn(argument[0])
        if function == "Ref":
            if argument in self.parameters:
                return self.parameters[argument]
            return {"AWS::Region": self.region, "AWS::AccountId": self.account, "AWS::Partition": "aws"}.get(
                argument, self.stack.resources.get(argument, argument)
            )
        if function == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]
            out, rest_text = "", text
            while "${" in rest_text:
                before, _, after = rest_text.partition("${")
                name, _, rest_text = after.partition("}")
                out += before + (self.arn(name[:-4]) if name.endswith(".Arn") else self.value({"Ref": name}))
            return out + rest_text
        if function == "Fn::Equals":
            left, right = (self.value(a) for a in argument)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self.value(argument[0])
        raise AssertionError(f"intrinsic {function} is not handled; extend the test")

    def condition(self, name: str | None) -> bool:
        return name is None or bool(self.value(self.template["Conditions"][name]))


def _policy_statements(document: Mapping[str, Any], resolve: _Resolver) -> Iterator[Statement]:
    for raw in document["Statement"]:
        if raw.get("Effect") != "Allow":
            continue
        actions = raw["Action"] if isinstance(raw["Action"], list) else [raw["Action"]]
        resources = raw["Resource"] if isinstance(raw["Resource"], list) else [raw["Resource"]]
        yield Statement(frozenset(actions), tuple(str(resolve.value(r)) for r in resources))


@pytest.fixture(scope="module")
def roles(synced_stack: SyncedStack) -> dict[str, Role]:
    """Each function's role as deployed: inline policies plus attached AWS::IAM::Policy resources whose
    condition holds for the stack's parameters."""
    template = transform_template(DEFAULT_TEMPLATE_PATH, "s3://bucket/code.zip", synced_stack.parameters)
    resolve = _Resolver(template, synced_stack)
    resources = template["Resources"]
    out: dict[str, Role] = {}
    for function, logical_id in FUNCTIONS.items():
        role_ref = resources[logical_id]["Properties"]["Role"]
        assert "Fn::GetAtt" in role_ref, f"{logical_id} must use a role of this template, got {role_ref}"
        role_id = role_ref["Fn::GetAtt"][0]
        role = resources[role_id]["Properties"]
        statements = [
            s for p in role.get("Policies", []) for s in _policy_statements(p["PolicyDocument"], resolve)
        ]
        for resource in resources.values():
            attached = (
                resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"]["Roles"]
            )
            if attached and resolve.condition(resource.get("Condition")):
                statements += _policy_statements(resource["Properties"]["PolicyDocument"], resolve)
        statements += _key_policy_grants(resources, role_id, resolve)
        out[function] = Role(function, role_id, tuple(statements), tuple(role.get("ManagedPolicyArns", [])))
    return out


def _key_policy_grants(resources: Mapping[str, Any], role_id: str, resolve: _Resolver) -> list[Statement]:
    """What the stack's KMS key policies grant the role by name (a key policy that names a principal
    of its account needs no identity policy besides it)."""
    grants = []
    for key_id, resource in resources.items():
        if resource["Type"] != "AWS::KMS::Key":
            continue
        for raw in resource["Properties"]["KeyPolicy"]["Statement"]:
            principals = raw["Principal"].get("AWS", []) if isinstance(raw["Principal"], dict) else []
            named = principals if isinstance(principals, list) else [principals]
            if raw["Effect"] == "Allow" and {"Fn::GetAtt": [role_id, "Arn"]} in named:
                actions = raw["Action"] if isinstance(raw["Action"], list) else [raw["Action"]]
                grants.append(Statement(frozenset(actions), (resolve.arn(key_id),)))
    return grants


def iam_requests(call: AwsCall, stack: SyncedStack) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs IAM authorises for one API call."""
    region_account = next(iter(stack.queue_arns.values())).split(":")[3:5]
    params = call.params
    if call.service == "dynamodb" and call.operation == "TransactWriteItems":
        pairs = []
        for item in params["TransactItems"]:
            ((kind, body),) = item.items()
            pairs.append(
                (
                    _TRANSACT_ITEM_ACTIONS[kind],
                    f"arn:aws:dynamodb:{':'.join(region_account)}:table/{body['TableName']}",
                )
            )
        return pairs
    action = f"{call.service}:{call.operation}"
    action = IAM_ACTION_OF.get(action, action)
    if call.service == "sqs":
        arn = stack.queue_arn(params["QueueUrl"])
    elif call.service == "dynamodb":
        arn = f"arn:aws:dynamodb:{':'.join(region_account)}:table/{params['TableName']}"
    elif call.service == "s3":
        key = params.get("Key")
        arn = f"arn:aws:s3:::{params['Bucket']}" + (f"/{key}" if key is not None else "")
        if action == "s3:GetObject" and call.status == 404:
            # S3 answers a missing key with 404 (which the code handles: no history yet) only to a
            # caller allowed s3:ListBucket on the bucket; to anyone else it is 403 AccessDenied.
            return [(action, arn), ("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}")]
    elif call.service == "secretsmanager":
        arn = params["SecretId"]
    elif call.service == "kms":
        arn = params["KeyId"]
    else:
        raise AssertionError(f"a call to {action}: extend the test for {call.service}")
    return [(action, arn)]


def code_calls(stack: SyncedStack, function: str) -> list[AwsCall]:
    """Calls the function's own code made (its aiobotocore clients)."""
    return [c for c in stack.calls_of(function) if c.aio]


def used_actions(stack: SyncedStack, function: str) -> frozenset[str]:
    used = frozenset(
        action for call in code_calls(stack, function) for action, _ in iam_requests(call, stack)
    )
    # Every container that uses the fleet's token may be the one to mint (seal) the next, and opens one
    # another container sealed; one sync shows each function doing only one of the two.
    token_at_rest = {"kms:Encrypt", "kms:Decrypt"}
    return used | token_at_rest if used & token_at_rest else used


def test_the_recorded_sync_ran_both_functions_to_a_successful_run(synced_stack: SyncedStack) -> None:
    # The recording is the evidence the other tests judge; it must be a whole, successful run.
    assert synced_stack.run_status == "succeeded", synced_stack.function_errors
    for function in FUNCTIONS:
        assert code_calls(synced_stack, function), f"no AWS call recorded for the {function}"


def test_every_call_a_function_makes_is_allowed_by_its_role_on_that_resource(
    synced_stack: SyncedStack, roles: dict[str, Role]
) -> None:
    denied: list[str] = []
    for function, role in roles.items():
        for call in synced_stack.calls_of(function):
            for action, arn in iam_requests(call, synced_stack):
                if not role.allows(action, arn):
                    denied.append(f"{function}: {call.operation} needs {action} on {arn}")
    assert not denied, "\n".join(sorted(set(denied)))


def test_the_lambda_service_can_poll_each_function_queue_and_write_its_logs(
    synced_stack: SyncedStack, roles: dict[str, Role]
) -> None:
    resolve = _Resolver(load_template(DEFAULT_TEMPLATE_PATH), synced_stack)
    queues = {"scheduler": "RequestQueue", "worker": "PageQueue", "finalize": "FinalizeQueue"}
    for function, role in roles.items():
        queue = resolve.arn(queues[function])
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            assert role.allows(action, queue), f"{function} role cannot {action} on its queue"
        name = synced_stack.function_names[function]
        stream = f"arn:aws:logs:{resolve.region}:{resolve.account}:log-group:/aws/lambda/{name}:log-stream:x"
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            assert role.allows(action, stream), f"{function} role cannot {action} to its log group"
    # and the poller's own calls (made as the Lambda service, with boto3) are platform actions
    poller = [c for c in synced_stack.calls if c.thread.startswith(("poller:", "lambda:")) and not c.aio]
    assert poller
    assert {a for c in poller for a, _ in iam_requests(c, synced_stack)} <= PLATFORM_ACTIONS | {
        "sqs:ChangeMessageVisibility"  # the emulation's quick retry of failed records (see poller.py)
    }


# Actions a clean sync never takes, only a fault: the worker deletes raw objects only when a delivery
# lost its step's commit to another; Finalize when it finds the object of a delivery that crashed after
# writing it, or a record two joins both wrote. tests/pipeline/test_redelivery.py ("crash after the S3
# write") and the chaos suite's lost-reply scenarios take those paths; the grants are limited to raw/.
FAULT_PATH_ACTIONS: dict[str, set[str]] = {"worker": {"s3:DeleteObject"}, "finalize": {"s3:DeleteObject"}}
# A path the recorded sync (arrayconnection cursors) does not take: with opaque cursors Finalize stores
# the run's chain checkpoints for the scope's next run (tests/pipeline/test_checkpoints.py runs it).
OPAQUE_PATH_ACTIONS: dict[str, set[str]] = {"finalize": {"dynamodb:PutItem"}}
# A path the recorded sync's small tenant does not take: a finding list larger than a part (8 MiB) is a
# multipart upload (tests/stats/test_finding_lists.py uploads 20 MiB). IAM authorizes all three
# operations as s3:PutObject, which the recorded sync's single-request lists use.
LARGE_FILE_OPERATIONS = {
    ("s3", "CreateMultipartUpload"),
    ("s3", "UploadPart"),
    ("s3", "CompleteMultipartUpload"),
}


def test_each_role_allows_exactly_the_actions_its_function_uses(
    synced_stack: SyncedStack, roles: dict[str, Role]
) -> None:
    for function, role in roles.items():
        assert not role.managed_policies, f"{role.logical_id} attaches managed policies the test cannot see"
        needed = (
            used_actions(synced_stack, function)
            | PLATFORM_ACTIONS
            | FAULT_PATH_ACTIONS.get(function, set())
            | OPAQUE_PATH_ACTIONS.get(function, set())
        )
        missing = needed - role.actions
        excess = role.actions - needed
        assert not missing, f"{role.logical_id} lacks {sorted(missing)}"
        assert not excess, f"{role.logical_id} grants actions {function} never uses: {sorted(excess)}"


@cache
def _operations() -> dict[str, list[tuple[str, str]]]:
    """python_method_name -> [(service, Operation)] for the services the functions use."""
    session = botocore.session.get_session()
    out: dict[str, list[tuple[str, str]]] = {}
    for service in AWS_SERVICES:
        for operation in session.get_service_model(service).operation_names:
            out.setdefault(xform_name(operation), []).append((service, operation))
    return out


def lambda_code_operations(noxfile: Any) -> dict[tuple[str, str], list[str]]:
    """(service, Operation) -> where the code the handlers import (what `noxfile.lambda_modules` puts in
    the Lambda package) calls it (`module:line`)."""
    root = Path(vanta_vuln_sync.__file__).resolve().parent
    found: dict[tuple[str, str], list[str]] = {}
    operations = _operations()
    for module in sorted(noxfile.lambda_modules(str(root), HANDLER_MODULES)):
        for node in ast.walk(ast.parse((root.parent / module).read_text())):
            if not isinstance(node, ast.Call):
                continue
            # `ddb.query(...)`, and a client's method handed to a helper that calls it
            # (`every_item(ddb.query, ...)`).
            called = [node.func, *node.args]
            for attribute in (a for a in called if isinstance(a, ast.Attribute)):
                for key in operations.get(attribute.attr, []):
                    found.setdefault(key, []).append(f"{module}:{node.lineno}")
    return found


def test_every_aws_operation_in_the_lambda_code_was_exercised_by_the_recorded_sync(
    synced_stack: SyncedStack, noxfile: Any
) -> None:
    in_code = lambda_code_operations(noxfile)
    recorded = {(c.service, c.operation) for f in FUNCTIONS for c in code_calls(synced_stack, f)}
    assert in_code, "the static scan found no AWS call at all: it is broken"
    fault_paths = {tuple(a.split(":")) for actions in FAULT_PATH_ACTIONS.values() for a in actions}
    unexercised = {
        op: where
        for op, where in in_code.items()
        if op not in recorded and op not in fault_paths and op not in LARGE_FILE_OPERATIONS
    }
    assert not unexercised, (
        f"the code calls {unexercised} but the recorded sync never did: extend synced_stack's scenario "
        "so the least-privilege check sees which function needs it"
    )
    unseen = recorded - set(in_code)
    assert not unseen, f"recorded calls the static scan cannot find (extend the scan): {sorted(unseen)}"
