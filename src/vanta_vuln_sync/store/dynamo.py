"""Plain Python values to and from DynamoDB's typed attribute values (the low-level client's format).

Only what the state table stores: str, int, bool, None, lists, string-keyed maps (and string sets,
read only). Written here rather
than taken from boto3 (`boto3.dynamodb.types`) because the Lambda package ships aiobotocore, not boto3.
`every_item` reads a whole Query or Scan, page after page, into such values; `conditional_write` makes
a write that may be refused by its condition.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from vanta_vuln_sync.aws import condition_failed

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]


def to_attr(value: Any) -> AttributeValue:
    """The attribute value for `value`; raises TypeError for a type the state table never stores."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, Mapping):
        return {"M": {str(k): to_attr(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attr(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__} in the state table")


def from_attr(attr: Mapping[str, Any]) -> Any:
    """The Python value of a typed attribute value (numbers come back as int)."""
    (kind, raw), *_ = attr.items()
    if kind == "NULL":
        return None
    if kind in ("S", "BOOL"):
        return raw
    if kind == "N":
        number = Decimal(raw)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "M":
        return {k: from_attr(v) for k, v in raw.items()}
    if kind == "L":
        return [from_attr(v) for v in raw]
    if kind == "SS":
        return set(raw)
    raise TypeError(f"unexpected DynamoDB attribute type {kind}")


def to_item(values: Mapping[str, Any]) -> Item:
    """A whole item from a mapping of plain values."""
    return {name: to_attr(value) for name, value in values.items()}


def from_item(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A mapping of plain values from a whole item."""
    return {name: from_attr(attr) for name, attr in item.items()}


async def every_item(read: Callable[..., Awaitable[Any]], **request: Any) -> list[dict[str, Any]]:
    """Every item a Query or a Scan returns (`read`: the client's `query` or `scan`, called with
    `request`), page after page until no LastEvaluatedKey, as plain values. Raises what `read` raises."""
    items: list[dict[str, Any]] = []
    while True:
        reply = await read(**request)
        items += [from_item(raw) for raw in reply.get("Items", [])]
        start = reply.get("LastEvaluatedKey")
        if not start:
            return items
        request = {**request, "ExclusiveStartKey": start}


async def conditional_write(write: Callable[..., Awaitable[Any]], **request: Any) -> dict[str, Any] | None:
    """Make a conditional write (`write`: the client's `put_item` or `update_item`, called with
    `request`) and return its reply; None when DynamoDB refused it because its condition did not hold.
    Raises any other ClientError."""
    try:
        return dict(await write(**request))
    except ClientError as exc:
        if condition_failed(exc):
            return None
        raise
