"""The state table's shape as template.yaml declares it, for tests that make a bare one on moto server.

`ddb.create_table(TableName=name, **STATE_TABLE_SHAPE)` with a boto3 or an aiobotocore client.
"""

from __future__ import annotations

from typing import Any

STATE_TABLE_SHAPE: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
