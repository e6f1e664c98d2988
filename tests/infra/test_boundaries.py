"""The stack's trust boundaries, read from the SAM-transformed template: who may use the key that guards
the Vanta token, who may enqueue on each queue, and where the Vanta credentials may be sent.

Policies are evaluated here the way IAM would for the cases that matter (a principal ARN sending one
message; a parameter set passing or failing a rule), after resolving the template's intrinsics for a
given parameter set, so a change that widens a boundary fails a test that names the boundary.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from vanta_vuln_sync.local.template import transform_template

from .conftest import CODE_URI, PARAMETERS, REGION, TEMPLATE, Template

ACCOUNT = "123456789012"
ROLES = {
    "SyncScheduleRole": f"arn:aws:iam::{ACCOUNT}:role/stack-SyncScheduleRole-A1",
    "SchedulerRole": f"arn:aws:iam::{ACCOUNT}:role/stack-SchedulerRole-B2",
    "WorkerRole": f"arn:aws:iam::{ACCOUNT}:role/stack-WorkerRole-C3",
}
# Not in ROLES: the finalize function sends to no queue but its DLQ (it never enqueues work).
FINALIZE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/stack-FinalizeRole-D4"
OPS_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ops-resync"
OPS_USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
READ_ONLY = f"arn:aws:iam::{ACCOUNT}:role/ReadOnlyAuditor"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


class _Resolver:
    """The intrinsics the policies use, for one parameter set; `NoValue` drops a list element."""

    NO_VALUE = object()

    def __init__(self, document: dict[str, Any], parameters: dict[str, str]) -> None:
        self.document = document
        defaults = {n: str(p.get("Default", "")) for n, p in document["Parameters"].items()}
        self.parameters = {**defaults, **parameters}

    def parameter(self, name: str) -> Any:
        value = self.parameters[name]
        kind = self.document["Parameters"][name]["Type"]
        return value.split(",") if kind == "CommaDelimitedList" else value

    def condition(self, name: str) -> bool:
        return bool(self.value(self.document["Conditions"][name]))

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not self.NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not next(iter(node)).startswith(("Fn::", "Ref", "Condition")):
            return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not self.NO_VALUE}
        ((function, argument),) = node.items()
        if function == "Ref":
            if argument == "AWS::NoValue":
                return self.NO_VALUE
            if argument in self.parameters:
                return self.parameter(argument)
            return {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws"}.get(
                argument, f"physical-{argument}"
            )
        if function == "Fn::GetAtt":
            return {**ROLES, "FinalizeRole": FINALIZE_ROLE}.get(argument[0], f"arn:aws:test:::{argument[0]}")
        if function == "Fn::If":
            name, then, otherwise = argument
            return self.value(then if self.condition(name) else otherwise)
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(str(v) for v in self.value(items))
        if function == "Fn::Split":
            separator, text = argument
            return str(self.value(text)).split(separator)
        if function == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.value({"Ref": m.group(1)})), argument)
        if function == "Fn::Equals":
            left, right = (self.value(a) for a in argument)
            return left == right
        if function == "Fn::Not":
            return not self.value(argument[0])
        if function == "Fn::Contains":
            options, item = (self.value(a) for a in argument)
            return item in options
        raise AssertionError(f"{function} is not handled; extend the test")


def _transformed(parameters: dict[str, str]) -> tuple[dict[str, Any], _Resolver]:
    given = {**PARAMETERS, **parameters}
    document = transform_template(TEMPLATE, CODE_URI, given, region=REGION)
    return document, _Resolver(document, given)


def _principals(statement: dict[str, Any]) -> list[str]:
    principal = statement["Principal"]
    if principal == "*":
        return ["*"]
    aws = principal["AWS"]
    return aws if isinstance(aws, list) else [aws]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def _may_send(policy: dict[str, Any], principal: str) -> bool:
    """IAM's answer for `principal` (of this account, over TLS) sending to the queue: an explicit deny
    wins; otherwise the queue policy must allow it (this account's identity policies aside)."""
    allowed = False
    for statement in policy["Statement"]:
        if not any(a in ("sqs:SendMessage", "sqs:*") for a in _actions(statement)):
            continue
        condition = statement.get("Condition", {})
        if "Bool" in condition:  # aws:SecureTransport=false: never the case here
            continue
        matches = "*" in _principals(statement) or principal in _principals(statement)
        if "ArnNotEquals" in condition:
            matches = matches and principal not in condition["ArnNotEquals"]["aws:PrincipalArn"]
        if matches and statement["Effect"] == "Deny":
            return False
        allowed = allowed or (matches and statement["Effect"] == "Allow")
    return allowed


def _queue_policy(parameters: dict[str, str], queue: str) -> dict[str, Any]:
    document, resolve = _transformed(parameters)
    (policy,) = [
        resolve.value(r["Properties"])
        for r in document["Resources"].values()
        if r["Type"] == "AWS::SQS::QueuePolicy" and r["Properties"]["Queues"] == [{"Ref": queue}]
    ]
    document_: dict[str, Any] = policy["PolicyDocument"]
    return document_


@pytest.mark.parametrize("resync", ["", f"{OPS_ROLE},{OPS_USER}"])
def test_request_queue_accepts_sync_requests_only_from_the_schedule_the_functions_and_named_principals(
    resync: str,
) -> None:
    policy = _queue_policy({"ResyncPrincipalArns": resync}, "RequestQueue")
    for role in ROLES.values():
        assert _may_send(policy, role), role
    for named in (OPS_ROLE, OPS_USER):
        assert _may_send(policy, named) is bool(resync), named
    for outsider in (READ_ONLY, ROOT, f"arn:aws:iam::{ACCOUNT}:role/some-script"):
        assert not _may_send(policy, outsider), outsider


def test_page_queue_accepts_work_only_from_the_scheduler_and_the_worker() -> None:
    policy = _queue_policy({"ResyncPrincipalArns": OPS_ROLE}, "PageQueue")
    assert _may_send(policy, ROLES["SchedulerRole"])
    assert _may_send(policy, ROLES["WorkerRole"])
    for outsider in (ROLES["SyncScheduleRole"], FINALIZE_ROLE, OPS_ROLE, READ_ONLY, ROOT):
        assert not _may_send(policy, outsider), outsider


def test_finalize_queue_accepts_finalize_only_from_the_worker() -> None:
    policy = _queue_policy({"ResyncPrincipalArns": OPS_ROLE}, "FinalizeQueue")
    assert _may_send(policy, ROLES["WorkerRole"])
    outsiders = (ROLES["SchedulerRole"], ROLES["SyncScheduleRole"], FINALIZE_ROLE, OPS_ROLE, READ_ONLY, ROOT)
    for outsider in outsiders:
        assert not _may_send(policy, outsider), outsider


def test_only_the_finalize_function_may_publish_the_digest() -> None:
    document, resolve = _transformed({"DigestEmail": "team@example.com"})
    (topic_policy,) = [
        resolve.value(r["Properties"]["PolicyDocument"])
        for r in document["Resources"].values()
        if r["Type"] == "AWS::SNS::TopicPolicy"
    ]

    def may_publish(principal: str) -> bool:
        allowed = False
        for statement in topic_policy["Statement"]:
            condition = statement.get("Condition", {})
            matches = "*" in _principals(statement) or principal in _principals(statement)
            if "ArnNotEquals" in condition:
                matches = matches and principal not in _as_list(condition["ArnNotEquals"]["aws:PrincipalArn"])
            if matches and statement["Effect"] == "Deny":
                return False
            allowed = allowed or (matches and statement["Effect"] == "Allow")
        return allowed

    assert may_publish(FINALIZE_ROLE)
    for outsider in (*ROLES.values(), OPS_ROLE, READ_ONLY, ROOT):
        assert not may_publish(outsider), outsider


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("queue", ["RequestQueue", "PageQueue", "FinalizeQueue"])
def test_redrive_principals_may_move_parked_messages_back_to_either_queue(queue: str) -> None:
    redriver = f"arn:aws:iam::{ACCOUNT}:role/oncall"
    policy = _queue_policy({"RedrivePrincipalArns": redriver, "ResyncPrincipalArns": OPS_ROLE}, queue)
    assert _may_send(policy, redriver)
    assert not _may_send(policy, READ_ONLY)
    assert _may_send(policy, OPS_ROLE) is (queue == "RequestQueue")
    assert not _may_send(_queue_policy({}, queue), redriver)


def test_every_queue_policy_refuses_plain_http() -> None:
    for queue in ("RequestQueue", "PageQueue", "FinalizeQueue"):
        policy = _queue_policy({}, queue)
        assert {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sqs:*",
            "Resource": f"arn:aws:test:::{queue}",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        } in policy["Statement"]


def test_the_state_key_rotates_and_only_the_function_roles_may_encrypt_or_decrypt_with_it(
    cfn: Template,
) -> None:
    key = cfn.resources["StateKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"
    _, resolve = _transformed({})
    policy = resolve.value(key["Properties"]["KeyPolicy"])
    use = {"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant"}
    direct_users: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "*" not in _principals(statement)
        actions = set(_actions(statement))
        assert not any(a in ("kms:*", "*") for a in actions)
        via = statement.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService")
        if actions & use and via is None:
            direct_users.update(_principals(statement))
        if via is not None:  # the table's own encryption, only through DynamoDB in this region
            assert via == f"dynamodb.{REGION}.amazonaws.com"
            assert statement["Condition"]["StringEquals"]["kms:CallerAccount"] == ACCOUNT
    # Finalize never touches the token: not a user of the key.
    assert direct_users == {ROLES["SchedulerRole"], ROLES["WorkerRole"]}
    (admin,) = [s for s in policy["Statement"] if s["Sid"] == "AccountAdministersTheKey"]
    assert _principals(admin) == [ROOT]
    assert not set(_actions(admin)) & use, "the account administers the key but may not use it"


def test_both_functions_are_told_the_key_that_guards_the_token(cfn: Template) -> None:
    for function in ("SchedulerFunction", "WorkerFunction"):
        variables = cfn.props(function)["Environment"]["Variables"]
        assert variables["TOKEN_KEY_ID"] == {"Fn::GetAtt": ["StateKey", "Arn"]}


def _passes(parameters: dict[str, str]) -> bool:
    """Whether CloudFormation would accept the parameters: AllowedPattern, then every applicable Rule."""
    document, resolve = _transformed(parameters)
    for name, value in resolve.parameters.items():
        pattern = document["Parameters"][name].get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            return False
    for rule in document.get("Rules", {}).values():
        if "RuleCondition" in rule and not resolve.value(rule["RuleCondition"]):
            continue
        if not all(resolve.value(a["Assert"]) for a in rule["Assertions"]):
            return False
    return True


@pytest.mark.parametrize(
    ("base", "auth", "custom", "accepted"),
    [
        ("https://api.vanta.com/v1", "https://api.vanta.com/oauth/token", "false", True),
        ("https://api.vanta-gov.com/v1", "https://api.vanta-gov.com/oauth/token", "false", True),
        ("https://api.vanta.com/v1", "https://collector.example.com/oauth/token", "false", False),
        ("https://api.vanta.com.evil.example/v1", "https://api.vanta.com/oauth/token", "false", False),
        ("http://api.vanta.com/v1", "https://api.vanta.com/oauth/token", "false", False),
        ("https://api.vanta.com/v1", "http://api.vanta.com/oauth/token", "false", False),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/oauth/token", "false", False),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/oauth/token", "true", True),
        ("https://user:pw@evil.example/v1", "https://api.vanta.com/oauth/token", "true", False),
    ],
)
def test_the_vanta_urls_name_vanta_over_https_unless_a_custom_host_is_allowed(
    base: str, auth: str, custom: str, accepted: bool
) -> None:
    parameters = {"VantaBaseUrl": base, "VantaAuthUrl": auth, "AllowCustomVantaHost": custom}
    assert _passes(parameters) is accepted


def test_the_default_parameters_pass_the_url_rule(cfn: Template) -> None:
    assert cfn.parameter_default("AllowCustomVantaHost") == "false"
    assert _passes({})


def test_the_run_cap_is_a_parameter_handed_to_the_functions(cfn: Template) -> None:
    assert cfn.parameter_default("MaxConcurrentRuns") == 3
    for function in ("SchedulerFunction", "WorkerFunction"):
        variables = cfn.props(function)["Environment"]["Variables"]
        assert variables["MAX_CONCURRENT_RUNS"] == {"Ref": "MaxConcurrentRuns"}
