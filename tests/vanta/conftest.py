"""Fixtures for the Vanta client tests: a virtual clock, aiohttp sessions, a DynamoDB state table."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from vanta_helpers import VirtualClock
from werkzeug.serving import make_server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Moto server as in tests/conftest.py, but answering one request at a time.

    Moto's DynamoDB evaluates a condition and applies the write without a lock, so two concurrent
    conditional writes can both succeed (seen: 2 winners in 4 of 20 races of 10 writers), which real
    DynamoDB never allows. The broker and the fleet limiter are built on that guarantee; serialising
    requests restores it. (Requested for the shared fixture; drop this override once it is there.)
    """
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with lock:
            return list(app(environ, start_response))

    server = make_server("127.0.0.1", 0, serialized, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


@pytest.fixture
async def virtual_clock() -> AsyncIterator[VirtualClock]:
    clock = VirtualClock()
    driver = asyncio.create_task(clock.drive())
    yield clock
    driver.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await driver


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


DdbFactory = Callable[[], Awaitable[Any]]


@pytest.fixture
async def ddb_clients(moto_server: str) -> AsyncIterator[DdbFactory]:
    """Factory of separate aiobotocore DynamoDB clients on moto server (one per simulated container)."""
    async with AsyncExitStack() as stack:
        session = get_session()

        async def make() -> Any:
            return await stack.enter_async_context(
                session.create_client("dynamodb", region_name="us-east-1", endpoint_url=moto_server)
            )

        yield make


@pytest.fixture
async def state_table(ddb_clients: DdbFactory) -> str:
    """A fresh state table (pk/sk) on moto server; its name."""
    ddb = await ddb_clients()
    name = f"state-{uuid.uuid4().hex[:12]}"
    await ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name
