"""The Vanta access token at rest: sealed with the stack's customer-managed KMS key, never in plain text.

Part of it reads what the full sync in the embedded runtime left in the state table (`synced_stack`:
the real template deployed into moto, so the key is the template's `StateKey`). The rest drives the
TokenBroker directly against moto server and the simulator: several containers (brokers) share one
sealed token, and a table reader without the key gets nothing it can call Vanta with.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import boto3
import pytest
from aiobotocore.session import get_session

from state_table import STATE_TABLE_SHAPE
from vanta_vuln_sync.simulator import Simulator
from vanta_vuln_sync.store.keys import TOKEN_KEY
from vanta_vuln_sync.store.token import KmsTokenCipher, TokenBroker
from vanta_vuln_sync.vanta.auth import token_fetcher

from .conftest import SyncedStack

REGION = "us-east-1"


def _token_item(stack: SyncedStack) -> dict[str, Any]:
    (item,) = [i for i in stack.table_items if i["pk"]["S"] == "token#vanta"]
    return item


def test_after_a_sync_the_token_item_holds_the_token_only_sealed(synced_stack: SyncedStack) -> None:
    assert synced_stack.run_status == "succeeded", synced_stack.function_errors
    issued = synced_stack.token
    assert issued, "the simulator issued no token: the sync did not run"
    item = _token_item(synced_stack)
    assert "token" not in item
    assert issued not in repr(item)
    sealed = base64.b64decode(item["token_sealed"]["S"])
    assert issued.encode() not in sealed
    # one mint served every container: the one that minted sealed it, the others opened it
    assert synced_stack.tokens_minted == 1
    kms_calls = [c for c in synced_stack.calls if c.service == "kms" and c.aio]
    sealed_by = {c.thread for c in kms_calls if c.operation == "Encrypt"}
    opened_by = {c.thread for c in kms_calls if c.operation == "Decrypt"}
    assert len(sealed_by) == 1
    assert opened_by - sealed_by, "no other container opened the sealed token"


def test_the_functions_seal_with_the_stack_key_and_bind_the_ciphertext_to_the_table(
    synced_stack: SyncedStack,
) -> None:
    key = synced_stack.resources["StateKey"]
    table = synced_stack.resources["StateTable"]
    kms_calls = [c for c in synced_stack.calls if c.service == "kms" and c.aio]
    assert {c.operation for c in kms_calls} == {"Encrypt", "Decrypt"}
    for call in kms_calls:
        assert call.params["KeyId"].endswith(key.rsplit("/", 1)[-1])
        assert call.params["EncryptionContext"] == {"table": table, "item": "token#vanta"}


@pytest.fixture
async def sealed_world(moto_server: str, simulator: Any) -> AsyncIterator[dict[str, Any]]:
    """A state table and a KMS key on moto server, the simulator, and aiobotocore clients for them."""
    sim: Simulator = await simulator(vulnerabilities=10)
    kwargs: dict[str, Any] = {"endpoint_url": moto_server, "region_name": REGION}
    table = f"tok-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb", **kwargs).create_table(TableName=table, **STATE_TABLE_SHAPE)
    key = boto3.client("kms", **kwargs).create_key(Description="token key")["KeyMetadata"]["Arn"]
    session = get_session()
    async with (
        session.create_client("dynamodb", **kwargs) as ddb,
        session.create_client("kms", **kwargs) as kms,
        aiohttp.ClientSession() as http,
    ):
        yield {"sim": sim, "table": table, "key": key, "ddb": ddb, "kms": kms, "http": http}


def _broker(world: dict[str, Any]) -> TokenBroker:
    sim: Simulator = world["sim"]
    fetch = token_fetcher(world["http"], sim.auth_url, sim.client_id, sim.client_secret)
    cipher = KmsTokenCipher(world["kms"], world["key"], world["table"])
    return TokenBroker(world["ddb"], world["table"], fetch, cipher=cipher)


async def test_containers_share_one_sealed_token_and_the_table_alone_does_not_reveal_it(
    sealed_world: dict[str, Any],
) -> None:
    # Given three containers' brokers on one table and one key
    first, second, third = (_broker(sealed_world) for _ in range(3))
    # When the first gets the fleet's token and the others ask after it
    token = await first.token()
    assert await second.token() == token
    assert await third.token() == token
    # Then one token was minted, and the table holds it only sealed
    assert (first.minted, second.minted, third.minted) == (1, 0, 0)
    item = (await sealed_world["ddb"].get_item(TableName=sealed_world["table"], Key=TOKEN_KEY))["Item"]
    assert "token" not in item
    assert token not in repr(item)
    # and what a table reader finds is no bearer token Vanta accepts
    sim: Simulator = sealed_world["sim"]
    async with sealed_world["http"].get(
        f"{sim.base_url}/vulnerabilities", headers={"Authorization": f"Bearer {item['token_sealed']['S']}"}
    ) as reply:
        assert reply.status == 401
    async with sealed_world["http"].get(
        f"{sim.base_url}/vulnerabilities", headers={"Authorization": f"Bearer {token}"}
    ) as reply:
        assert reply.status == 200


async def test_a_ciphertext_moved_to_another_table_does_not_open(sealed_world: dict[str, Any]) -> None:
    cipher = KmsTokenCipher(sealed_world["kms"], sealed_world["key"], sealed_world["table"])
    elsewhere = KmsTokenCipher(sealed_world["kms"], sealed_world["key"], "another-table")
    sealed = await cipher.seal("vat_example")
    assert await cipher.unseal(sealed) == "vat_example"
    assert await elsewhere.unseal(sealed) is None


async def test_a_plain_token_left_from_before_the_key_is_replaced_not_trusted(
    sealed_world: dict[str, Any],
) -> None:
    # Given an item written before the stack had a token key (plain text, still valid for an hour)
    world = sealed_world
    await world["ddb"].put_item(
        TableName=world["table"],
        Item={**TOKEN_KEY, "token": {"S": "vat_plain_left_over"}, "expires_at": {"N": "9999999999"}},
    )
    # When a broker with the key asks for the token
    broker = _broker(world)
    token = await broker.token()
    # Then it minted a new one and the plain attribute is gone
    assert token != "vat_plain_left_over"
    assert broker.minted == 1
    item = (await world["ddb"].get_item(TableName=world["table"], Key=TOKEN_KEY))["Item"]
    assert "token" not in item
    assert "token_sealed" in item
