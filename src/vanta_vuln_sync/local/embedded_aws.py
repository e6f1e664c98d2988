"""The embedded AWS: moto server in this process, with the real `template.yaml` deployed into it.

`MotoServer` runs moto's WSGI app on a free loopback port behind a gate; `EmbeddedAws.start()` points
this process at it (`AWS_ENDPOINT_URL`, dummy credentials, a region), so every boto3/aiobotocore client
made afterwards, including the handlers', talks to moto. `deploy()` then does what `sam package` +
`sam deploy` do: zips the package into a bootstrap bucket, runs the SAM transform locally
(`template.py`), stores the Vanta credentials as a Secrets Manager secret, and creates the stack with
moto's CloudFormation.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
from botocore.exceptions import ClientError

import vanta_vuln_sync
from vanta_vuln_sync.local.access_keys import ACCESS_KEYS, CONTAINER_KEY_PREFIX, AccessKeys
from vanta_vuln_sync.local.template import DEFAULT_TEMPLATE_PATH, deploy_to_moto, transform_template

logger = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
DEFAULT_STACK_NAME = "vuln-sync-local"
BOOTSTRAP_BUCKET = "vuln-sync-local-artifacts"
# Loggers that narrate every request or every resource moto skips; the runtime reports those itself.
_UNSUPPORTED_WARNING = ".*not supported by moto's CloudFormation"
_NOISY_LOGGERS = ("werkzeug", "moto", "moto.cloudformation.parsing", "moto.awslambda.models")


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# Wraps moto's WSGI app (a request meter, a fault injector): `MotoServer(middlewares=[...])`.
Middleware = Callable[[WsgiApp], WsgiApp]


class DeployError(RuntimeError):
    """The embedded stack could not be created; the message says which step failed and why."""


@dataclass(frozen=True, slots=True)
class EmbeddedStack:
    """A stack deployed into moto: its outputs, its functions, and what moto did not create."""

    name: str
    outputs: dict[str, str]
    function_names: list[str]
    secret_arn: str
    skipped: list[tuple[str, str]]  # (logical id, type) of resources moto's CloudFormation ignored

    def skipped_summary(self) -> str:
        """One line: how many resources moto skipped, counted by type (empty when none)."""
        if not self.skipped:
            return ""
        by_type: dict[str, int] = {}
        for _, kind in self.skipped:
            by_type[kind] = by_type.get(kind, 0) + 1
        parts = ", ".join(f"{count} {kind.removeprefix('AWS::')}" for kind, count in sorted(by_type.items()))
        return f"not emulated by moto (created in AWS only): {parts}"


def detach_moto_sqs_invoker() -> int:
    """Stop moto from invoking mapped functions itself; returns how many queue mappings it dropped.

    moto's SQS, on every SendMessage to a queue with an event source mapping, receives a batch and
    "invokes" the function in Docker (there is none here), bumping receive counts and racing our poller.
    The mappings stay listed in moto's Lambda (our poller reads them there); only the queue's private
    link to moto's invoker is removed. This needs moto running in this process (ThreadedMotoServer).
    """
    from moto.sqs.models import sqs_backends

    dropped = 0
    for regions in sqs_backends.values():
        for backend in regions.values():
            for queue in backend.queues.values():
                dropped += len(queue.lambda_event_source_mappings)
                queue.lambda_event_source_mappings.clear()
    return dropped


def package_code(package_dir: Path | None = None) -> bytes:
    """A Lambda zip of the `vanta_vuln_sync` package (sources only), as `sam build` lays it out."""
    root = package_dir or Path(vanta_vuln_sync.__file__).resolve().parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                archive.write(path, Path(root.name) / path.relative_to(root))
    return buffer.getvalue()


class _Gate:
    """WSGI middleware in front of moto: refuses revoked container keys, serializes racy writes.

    Revoked keys (see `access_keys`): a request signed with a container key that the poller revoked
    (its invocation passed its timeout) is answered 403 AccessDenied in the service's own format and
    never reaches moto. The check is made when the request arrives and again once it holds the lock
    below, and `AccessKeys.revoke` waits for the key's requests in progress, so once a key is revoked
    nothing it sent changes state.

    Serialized writes: one DynamoDB or SQS write request at a time. moto's backends are not
    thread-safe: TransactWriteItems deep-copies the table while other request threads write to it
    ("dictionary changed size during iteration", a 500), two concurrent conditional writes can both
    succeed, and SQS rebuilds a queue's message list on delete, which can drop a message sent at that
    moment. These requests are short, so serializing them costs little. ReceiveMessage is left
    concurrent: a long poll would hold the lock for its whole wait.
    """

    def __init__(self, app: Any, keys: AccessKeys) -> None:
        self._app = app
        self._keys = keys
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        serialized = target.startswith("DynamoDB_") or (
            target.startswith("AmazonSQS.") and target != "AmazonSQS.ReceiveMessage"
        )
        key, service = _signing_key(environ)
        if key is None or not key.startswith(CONTAINER_KEY_PREFIX):
            if serialized:
                with self._lock:
                    return list(self._app(environ, start_response))
            return self._app(environ, start_response)
        if not self._keys.enter(key):
            return _access_denied(environ, start_response, key, service)
        try:
            if serialized:
                with self._lock:
                    if self._keys.is_revoked(key):
                        self._keys.refuse()
                        return _access_denied(environ, start_response, key, service)
                    return list(self._app(environ, start_response))
            # Read the whole reply while the key counts as in flight (revoke waits for it).
            return list(self._app(environ, start_response))
        finally:
            self._keys.leave(key)


def _signing_key(environ: dict[str, Any]) -> tuple[str | None, str]:
    """The access key id and service of a SigV4 request (header or presigned URL), or (None, "")."""
    authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
    _, found, rest = authorization.partition("Credential=")
    if not found:
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        rest = (query.get("X-Amz-Credential") or [""])[0]
        if not rest:
            return None, ""
    scope = rest.split(",", 1)[0].split("/")
    return scope[0], scope[3] if len(scope) > 3 else ""


def _access_denied(environ: dict[str, Any], start_response: Any, key: str, service: str) -> list[bytes]:
    """403 AccessDenied as `service` words it (S3 XML, JSON with the query-compatible code for SQS)."""
    # Read the request's body first: left unread, it would be taken for the connection's next request.
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > 0:
        environ["wsgi.input"].read(length)
    message = (
        f"access key {key} is revoked: its Lambda container was killed when its invocation passed "
        "the function timeout (embedded runtime)"
    )
    headers = [("x-amzn-requestid", "embedded-revoked"), ("x-amz-request-id", "embedded-revoked")]
    if service in ("s3", ""):
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            f"<Message>{message}</Message><RequestId>embedded-revoked</RequestId></Error>"
        ).encode()
        headers.append(("Content-Type", "application/xml"))
    else:
        code = "AccessDenied" if service == "sqs" else "AccessDeniedException"
        body = json.dumps({"__type": f"{code}", "message": message}).encode()
        headers.append(("Content-Type", "application/x-amz-json-1.0"))
        if service == "sqs":
            headers.append(("x-amzn-query-error", "AccessDenied;Sender"))
    headers.append(("Content-Length", str(len(body))))
    start_response("403 Forbidden", headers)
    return [body]


class MotoServer:
    """`moto.server.ThreadedMotoServer` behind `_Gate`: revoked container keys refused, DynamoDB and
    SQS writes serialized. `middlewares` wrap moto's app inside the gate, innermost first (a request
    meter sees only what reaches moto).

    Also what the tests run: moto evaluates a DynamoDB condition and applies the write without a lock,
    so two concurrent conditional writes can both succeed, which real DynamoDB never allows.
    """

    def __init__(self, *, middlewares: Sequence[Middleware] = ()) -> None:
        self._middlewares = tuple(middlewares)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.endpoint_url = ""

    def start(self) -> str:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        _cache_moto_module_list()
        app: WsgiApp = DomainDispatcherApplication(create_backend_app)
        for middleware in self._middlewares:
            app = middleware(app)
        gate = _Gate(app, ACCESS_KEYS)

        class QuietRequestHandler(MotoRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                """No line per request: formatting them cost a twentieth of a sync's CPU here."""

        self._server = make_server("127.0.0.1", 0, gate, threaded=True, request_handler=QuietRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        ACCESS_KEYS.add_guard()
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        return self.endpoint_url

    def reset(self) -> None:
        """Empty every moto backend (what moto's `/moto-api/reset` does): they are global to the process,
        so a server started after another one in the same process starts with the other's data."""
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            ACCESS_KEYS.remove_guard()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None


def _cache_moto_module_list() -> None:
    """moto's dispatcher lists its package directory (a listdir and a stat per service) on every request,
    under the lock that serializes all of them: a sixth of a sync's moto time here. The list cannot
    change while the process runs, so it is read once (idempotent: the cached function is kept)."""
    from moto import backends

    if getattr(backends.list_of_moto_modules, "__name__", "") != "_moto_modules_read_once":
        modules = frozenset(backends.list_of_moto_modules())

        def _moto_modules_read_once() -> frozenset[str]:
            return modules

        backends.list_of_moto_modules = _moto_modules_read_once


class EmbeddedAws:
    """This process's AWS settings pointed at a moto server running in it (`MotoServer`, which
    `world.World` starts), and the stack deployed into it."""

    def __init__(self, *, endpoint_url: str, region: str = DEFAULT_REGION) -> None:
        self.region = region
        self.endpoint_url = endpoint_url

    def start(self) -> str:
        """Point this process at the moto server; returns its URL.

        Any AWS profile or credentials in the environment are replaced by dummy ones for this process,
        so nothing here can reach a real AWS account.
        """
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        # moto re-reads the stack (and warns per unsupported type) on every DescribeStacks.
        warnings.filterwarnings("ignore", message=_UNSUPPORTED_WARNING, category=UserWarning)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE"):
            os.environ.pop(name, None)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_ACCESS_KEY_ID": "embedded",
                "AWS_SECRET_ACCESS_KEY": "embedded",
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
            }
        )
        return self.endpoint_url

    def client(self, service: str) -> Any:
        """A boto3 client of `service` on the embedded endpoint."""
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region)  # type: ignore[call-overload]

    def deploy(
        self,
        *,
        client_id: str,
        client_secret: str,
        parameters: Mapping[str, str | int],
        stack_name: str = DEFAULT_STACK_NAME,
        template_path: Path = DEFAULT_TEMPLATE_PATH,
    ) -> EmbeddedStack:
        """Package, transform and create the stack; returns its outputs. Raises DeployError.

        `parameters` are template parameters; `VantaSecretArn` is filled in from the secret created
        here with `client_id` / `client_secret`.
        """
        if not Path(template_path).is_file():
            raise DeployError(
                f"no template at {template_path}: run from a checkout of the repository "
                "(the template is not part of the installed package)"
            )
        code = package_code()
        key = f"code/{hashlib.sha256(code).hexdigest()[:16]}.zip"
        s3 = self.client("s3")
        location = {} if self.region == "us-east-1" else {"LocationConstraint": self.region}
        try:
            s3.create_bucket(
                Bucket=BOOTSTRAP_BUCKET, **({"CreateBucketConfiguration": location} if location else {})
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
        s3.put_object(Bucket=BOOTSTRAP_BUCKET, Key=key, Body=code)
        secret_arn: str = self.client("secretsmanager").create_secret(
            Name=f"{stack_name}/vanta",
            SecretString=json.dumps({"client_id": client_id, "client_secret": client_secret}),
        )["ARN"]
        values = {name: str(value) for name, value in parameters.items()}
        values["VantaSecretArn"] = secret_arn
        try:
            template = transform_template(
                template_path, f"s3://{BOOTSTRAP_BUCKET}/{key}", values, region=self.region
            )
            cfn = self.client("cloudformation")
            # Sent as a string so the mappings stay enabled as in AWS; moto's own invoker is detached.
            with warnings.catch_warnings():
                # moto warns once per unsupported resource type; the caller reports them in one line.
                warnings.filterwarnings("ignore", message=_UNSUPPORTED_WARNING, category=UserWarning)
                # With the clients, the settings moto's CloudFormation ignores (TTL, versioning) are applied.
                outputs = deploy_to_moto(
                    cfn,
                    json.dumps(template),
                    stack_name,
                    values,
                    dynamodb_client=self.client("dynamodb"),
                    s3_client=s3,
                )
        except Exception as exc:
            raise DeployError(f"deploying {template_path} into moto failed: {exc}") from exc
        detach_moto_sqs_invoker()
        created = {
            summary["LogicalResourceId"]
            for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name)
            for summary in page["StackResourceSummaries"]
        }
        resources: dict[str, dict[str, Any]] = template["Resources"]
        # Conditional resources (alarm e-mail, Lambda Insights) are off in the embedded stack anyway.
        skipped = sorted(
            (logical_id, resource["Type"])
            for logical_id, resource in resources.items()
            if logical_id not in created and "Condition" not in resource
        )
        functions = [
            physical
            for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name)
            for summary in page["StackResourceSummaries"]
            if summary["ResourceType"] == "AWS::Lambda::Function"
            and (physical := summary.get("PhysicalResourceId"))
        ]
        return EmbeddedStack(
            name=stack_name,
            outputs=outputs,
            function_names=functions,
            secret_arn=secret_arn,
            skipped=skipped,
        )
