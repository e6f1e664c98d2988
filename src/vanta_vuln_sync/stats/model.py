"""What Finalize hands to the statistics step, and the vocabulary the statistics share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from vanta_vuln_sync.messages import FULL_SCOPE as FULL_SCOPE  # a message concept; re-exported
from vanta_vuln_sync.vanta.resources import SEVERITIES as SEVERITIES  # Vanta's vocabulary; re-exported

SCHEMA_VERSION = 1

VULNERABILITIES = "vulnerabilities"
REMEDIATIONS = "vulnerability-remediations"
ASSETS = "vulnerable-assets"
RESOURCES = (VULNERABILITIES, REMEDIATIONS, ASSETS)

# Every severity key (vanta.resources.SEVERITIES) is present in every per-severity map, in that order
# (most severe first). A severity Vanta sends outside those four is kept under its own upper-cased key.


SyncMode = Literal["full", "incremental"]
DEFAULT_OWNER_TAG_KEY = "team"
FINDINGS_DIR = "findings/"


def run_prefix(run_id: str) -> str:
    """Where a run's outputs live."""
    return f"runs/{run_id}/"


def open_findings_key(run_id: str) -> str:
    """The run's every open finding (gzip NDJSON of list rows): the next run's resolved list reads it."""
    return f"{run_prefix(run_id)}{FINDINGS_DIR}open.ndjson.gz"


@dataclass(frozen=True, slots=True)
class RawObject:
    """One raw S3 object of a run, as listed in its manifest: gzip NDJSON records of one resource."""

    resource: str
    key: str
    records: int


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A finished run as Finalize knows it.

    `started_at`/`finished_at` are timezone-aware UTC datetimes; `started_at` is the statistics' `as_of`.
    `mode` says per resource whether the run fetched everything (`full`) or only what changed
    (`incremental`, remediations only); a resource missing from it counts as `full` when the run wrote
    objects for it and as an empty increment otherwise.
    """

    id: str
    scope: str
    started_at: datetime
    finished_at: datetime
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    objects: list[RawObject] = field(default_factory=list)
    mode: Mapping[str, SyncMode] = field(default_factory=dict)
    # Joins the run could not make while Vanta's lists changed: when any, the run is not exact.
    warnings: tuple[str, ...] = ()
    # The asset tag that names a finding's owner (template parameter OwnerTagKey).
    owner_tag_key: str = DEFAULT_OWNER_TAG_KEY

    def mode_of(self, resource: str) -> SyncMode:
        """The sync mode of `resource` in this run (see the class docstring for the default)."""
        if resource in self.mode:
            return self.mode[resource]
        return "full" if any(obj.resource == resource for obj in self.objects) else "incremental"


def severity_key(raw: object) -> str:
    """Vanta's severity normalised to upper case (remediations send lower case); `UNKNOWN` when absent."""
    if isinstance(raw, str) and raw.strip():
        return raw.strip().upper()
    return "UNKNOWN"


def severity_map(counts: Mapping[str, int]) -> dict[str, int]:
    """A per-severity count map with every standard severity present, then any others sorted."""
    out = {sev: int(counts.get(sev, 0)) for sev in SEVERITIES}
    for sev in sorted(counts):
        if sev not in out:
            out[sev] = int(counts[sev])
    return out
