"""aiobotocore clients, opened once per event loop and closed with it.

aiobotocore clients are bound to the loop that opened them (their connector and its sockets live there),
so the caller owns an `AsyncExitStack` per loop: the Lambda container's (see `container.py`), or a test's.
Nothing here runs at import time. botocore honours `AWS_ENDPOINT_URL`, which points every client at moto
server in tests and in the embedded runtime.
"""

from __future__ import annotations

import functools
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import ClientError
from botocore.loaders import Loader
from botocore.session import Session

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_kms import KMSClient
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_secretsmanager import SecretsManagerClient
    from types_aiobotocore_sqs import SQSClient

_S = TypeVar("_S", bound=Session)

# Ten ranges in flight each write S3, DynamoDB and SQS: keep enough pooled connections per client.
_CONFIG = AioConfig(max_pool_connections=50, retries={"mode": "standard", "max_attempts": 5})


def condition_failed(exc: ClientError) -> bool:
    """True when DynamoDB refused a write because its condition did not hold (a single write's
    ConditionalCheckFailedException, or a transaction cancelled by one of its conditions)."""
    code = exc.response.get("Error", {}).get("Code", "")
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


@dataclass(frozen=True, slots=True)
class AwsClients:
    """The AWS clients the pipeline uses, all opened on one event loop."""

    s3: S3Client
    sqs: SQSClient
    dynamodb: DynamoDBClient
    secrets: SecretsManagerClient
    # Seals the Vanta token at rest (store/token.py); None only where nothing stores a token.
    kms: KMSClient | None = None


async def open_clients(
    stack: AsyncExitStack, *, region: str | None = None, session: AioSession | None = None
) -> AwsClients:
    """Open the clients on the running loop; they close when `stack` closes."""
    session = session or new_session()
    return AwsClients(
        s3=await stack.enter_async_context(session.create_client("s3", region_name=region, config=_CONFIG)),
        sqs=await stack.enter_async_context(session.create_client("sqs", region_name=region, config=_CONFIG)),
        dynamodb=await stack.enter_async_context(
            session.create_client("dynamodb", region_name=region, config=_CONFIG)
        ),
        secrets=await stack.enter_async_context(
            session.create_client("secretsmanager", region_name=region, config=_CONFIG)
        ),
        kms=await stack.enter_async_context(session.create_client("kms", region_name=region, config=_CONFIG)),
    )


def new_session() -> AioSession:
    """An aiobotocore session whose service models come from the process's one loader (see below)."""
    return with_shared_models(get_session())


def with_shared_models(session: _S) -> _S:
    """`session` reading service models through the process's one botocore loader.

    Each session otherwise parses the JSON models of every service it makes a client for (and the
    endpoint rules) again: a Lambda container makes one session, but the embedded runtime runs many
    containers in one process, and each cold start re-read ~0.3 s of CPU of models that never change.
    The loader is the first session's, so it searches the same data paths (`AWS_DATA_PATH`)."""
    session.register_component("data_loader", _process_loader())
    return session


@functools.cache
def _process_loader() -> Any:
    loader: Loader = Session().get_component("data_loader")
    return loader
