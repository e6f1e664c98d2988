"""Fixtures for the statistics tests: an S3 client and a fresh bucket in moto server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.session import get_session

AWS_REGION = "us-east-1"
# One botocore session for the module: it caches the parsed service models, which otherwise cost
# about a second per test to load again. Clients are still made per test (per event loop).
SESSION = get_session()


@pytest.fixture
async def s3(moto_server: str) -> AsyncIterator[Any]:
    """An aiobotocore S3 client pointed at moto server."""
    async with SESSION.create_client("s3", endpoint_url=moto_server, region_name=AWS_REGION) as client:
        yield client


@pytest.fixture
async def bucket(s3: Any) -> str:
    """A fresh, empty data bucket (unique name: the moto server is shared by the session)."""
    name = f"data-{uuid.uuid4().hex[:12]}"
    await s3.create_bucket(Bucket=name)
    return name
