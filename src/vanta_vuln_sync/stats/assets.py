"""Vulnerable-asset statistics: compact per-asset state deduplicated by `id` (last record wins).

Per asset: the type and the owner (both interned), the scanned flag and the name (the finding lists
show it). Assets are about a tenth of the vulnerabilities, so their names cost little next to those.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Collection
from typing import Any

from .interning import Interner
from .model import DEFAULT_OWNER_TAG_KEY

UNKNOWN_TYPE = "UNKNOWN"
NO_OWNER = -1


def owner_of(record: dict[str, Any], tag_key: str) -> str | None:
    """The value of the first tag named `tag_key` (exact, case-sensitive) on the asset's scanners, in
    the order Vanta lists them; None when no scanner carries a non-empty one."""
    for scanner in record.get("scanners") or ():
        if not isinstance(scanner, dict):
            continue
        for tag in scanner.get("assetTags") or ():
            if isinstance(tag, dict) and tag.get("key") == tag_key and tag.get("value"):
                return str(tag["value"])
    return None


class AssetTally:
    """Asset types, owners, names and scan flags by id."""

    def __init__(self, owner_tag_key: str = DEFAULT_OWNER_TAG_KEY) -> None:
        self.records = 0
        self.owner_tag_key = owner_tag_key
        self._rows: dict[str, int] = {}
        self._types = Interner()
        self._owners = Interner()
        self._type = array("i")
        self._owner = array("i")
        self._scanned = array("B")
        self._names: list[str | None] = []

    def add(self, record: dict[str, Any]) -> None:
        """Reduce one raw record (counted as read; skipped without an `id`)."""
        self.records += 1
        rid = record.get("id")
        if rid is None:
            return
        rid = str(rid)
        kind = self._types.code(str(record.get("assetType") or UNKNOWN_TYPE))
        scanned = 1 if record.get("hasBeenScanned") is True else 0
        owner = owner_of(record, self.owner_tag_key)
        owner_code = NO_OWNER if owner is None else self._owners.code(owner)
        raw_name = record.get("name")
        name = None if raw_name is None else str(raw_name)
        row = self._rows.get(rid)
        if row is None:
            self._rows[rid] = len(self._type)
            self._type.append(kind)
            self._owner.append(owner_code)
            self._scanned.append(scanned)
            self._names.append(name)
        else:
            self._type[row] = kind
            self._owner[row] = owner_code
            self._scanned[row] = scanned
            self._names[row] = name

    def row_of(self, asset_id: str) -> int | None:
        """The row of a known asset, None when the asset was not read."""
        return self._rows.get(asset_id)

    def name(self, asset_id: str) -> str | None:
        """The name of a known asset (None when unknown or unnamed)."""
        row = self._rows.get(asset_id)
        return None if row is None else self._names[row]

    def asset_type(self, asset_id: str) -> str | None:
        """The type of a known asset, None when the asset was not read."""
        row = self._rows.get(asset_id)
        return None if row is None else self._types.values[self._type[row]]

    def row_facts(self, row: int) -> tuple[str | None, str, str | None]:
        """(name, type, owner or None) of the asset at `row`."""
        owner = self._owner[row]
        return (
            self._names[row],
            self._types.values[self._type[row]],
            None if owner == NO_OWNER else self._owners.values[owner],
        )

    def summarize(self, critical_targets: Collection[str]) -> dict[str, Any]:
        """The `assets` section; `critical_targets` are the targetIds of active CRITICAL vulnerabilities."""
        by_type: Counter[int] = Counter(self._type)
        return {
            "total": len(self._rows),
            "by_type": {
                self._types.values[code]: by_type[code]
                for code in sorted(by_type, key=self._types.values.__getitem__)
            },
            "scanned": sum(self._scanned),
            "with_open_critical": sum(1 for target in critical_targets if target in self._rows),
        }
