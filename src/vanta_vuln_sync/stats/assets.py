"""Vulnerable-asset statistics: compact per-asset state deduplicated by `id` (last record wins).

Only the asset type (interned) and the scanned flag are kept per asset; names are kept only for the
assets the report lists (the top assets, known before assets are read), so memory stays small.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Collection
from typing import Any

from .interning import Interner

UNKNOWN_TYPE = "UNKNOWN"


class AssetTally:
    """Asset types and scan flags by id, plus the names and types of the `wanted` asset ids."""

    def __init__(self, wanted: Collection[str] = ()) -> None:
        self.records = 0
        self._rows: dict[str, int] = {}
        self._types = Interner()
        self._type = array("i")
        self._scanned = array("B")
        self._wanted = set(wanted)
        self.names: dict[str, str | None] = {}

    def add(self, record: dict[str, Any]) -> None:
        """Reduce one raw record (counted as read; skipped without an `id`)."""
        self.records += 1
        rid = record.get("id")
        if rid is None:
            return
        rid = str(rid)
        kind = self._types.code(str(record.get("assetType") or UNKNOWN_TYPE))
        scanned = 1 if record.get("hasBeenScanned") is True else 0
        row = self._rows.get(rid)
        if row is None:
            self._rows[rid] = len(self._type)
            self._type.append(kind)
            self._scanned.append(scanned)
        else:
            self._type[row] = kind
            self._scanned[row] = scanned
        if rid in self._wanted:
            name = record.get("name")
            self.names[rid] = None if name is None else str(name)

    def asset_type(self, asset_id: str) -> str | None:
        """The type of a known asset, None when the asset was not read."""
        row = self._rows.get(asset_id)
        return None if row is None else self._types.values[self._type[row]]

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
