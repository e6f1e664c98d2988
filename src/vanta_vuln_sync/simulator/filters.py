"""Query filters of each list endpoint: parsing (400 on a bad value) and selection, as documented.

Semantics, where Vanta's documentation leaves them open (clients and tests rely on these):
- Unknown parameter names are ignored silently, as Vanta does (a typo returns the unfiltered list).
- Booleans are exactly `true` or `false`; severities and asset types are the upper-case enums; dates
  are RFC 3339 with a timezone. Anything else is a 400.
- Date windows are half-open: `...AfterDate` is inclusive (>=), `...BeforeDate` exclusive (<), so
  adjacent windows partition the records. A record whose date is null matches no date filter.
- `q` is a case-insensitive substring match: vulnerabilities on name, description and
  packageIdentifier; assets on name. `externalVulnerabilityId` matches the vulnerability `name` exactly.
- `isRemediatedOnTime=true`: remediated on or before `slaDeadlineDate`, or there was no deadline.
- Remediations' `integrationId` is the integration of the vulnerability they closed.
- Vulnerabilities without `remediateByDate` are left out unless `includeVulnerabilitiesWithoutSlas=true`,
  which returns them together with the rest (after them in the order, as their date sorts last).
- Remediations' `severity` takes the upper-case enum and matches the lower-case value the records carry;
  with `severity_case_sensitive` (config `remediation_severity_case_sensitive`) it compares as written,
  so `CRITICAL` matches nothing and `critical` the critical ones (one reading of Vanta's docs).
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from vanta_vuln_sync.simulator.churn import ChurnEvent, splice
from vanta_vuln_sync.simulator.dataset import Dataset, Resource, checked_resource
from vanta_vuln_sync.simulator.generation import Flaw
from vanta_vuln_sync.simulator.render import scanner_account
from vanta_vuln_sync.simulator.vocabulary import ASSET_TYPES, INTEGRATIONS, SEVERITIES

BOOLEAN = "bool"
DATE = "date"
TEXT = "text"
SEVERITY = "severity"
ASSET_TYPE = "assetType"

FILTERS: dict[str, dict[str, str]] = {
    "vulnerabilities": {
        "q": TEXT,
        "isDeactivated": BOOLEAN,
        "externalVulnerabilityId": TEXT,
        "isFixAvailable": BOOLEAN,
        "packageIdentifier": TEXT,
        "slaDeadlineAfterDate": DATE,
        "slaDeadlineBeforeDate": DATE,
        "severity": SEVERITY,
        "integrationId": TEXT,
        "includeVulnerabilitiesWithoutSlas": BOOLEAN,
        "vulnerableAssetId": TEXT,
    },
    "vulnerability-remediations": {
        "integrationId": TEXT,
        "severity": SEVERITY,
        "isRemediatedOnTime": BOOLEAN,
        "remediatedAfterDate": DATE,
        "remediatedBeforeDate": DATE,
    },
    "vulnerable-assets": {
        "q": TEXT,
        "integrationId": TEXT,
        "assetType": ASSET_TYPE,
        "assetExternalAccountId": TEXT,
    },
    "integrations": {},
}


class FilterError(ValueError):
    """A filter value Vanta would reject with 400; the message names the parameter."""


NO_SEVERITY = -1  # a parsed severity no record has


def parse_filters(
    resource: Resource, query: Mapping[str, str], *, severity_case_sensitive: bool = False
) -> dict[str, Any]:
    """The documented filters present in `query`, parsed; other parameters are ignored.

    `severity_case_sensitive`: remediations' `severity` is compared as written with the lower-case
    values of the records (upper case is accepted and matches nothing). Raises FilterError for a
    malformed value.
    """
    parsed: dict[str, Any] = {}
    for name, kind in FILTERS[resource].items():
        if name not in query:
            continue
        raw = query[name]
        if kind == SEVERITY and severity_case_sensitive and resource == "vulnerability-remediations":
            lower = tuple(severity.lower() for severity in SEVERITIES)
            if raw not in lower and raw not in SEVERITIES:
                raise FilterError(f"{name} must be one of {', '.join(lower)}, got {raw!r}")
            parsed[name] = lower.index(raw) if raw in lower else NO_SEVERITY
        elif kind == BOOLEAN:
            if raw not in ("true", "false"):
                raise FilterError(f"{name} must be 'true' or 'false', got {raw!r}")
            parsed[name] = raw == "true"
        elif kind == DATE:
            parsed[name] = _parse_date(name, raw)
        elif kind == SEVERITY:
            if raw not in SEVERITIES:
                raise FilterError(f"{name} must be one of {', '.join(SEVERITIES)}, got {raw!r}")
            parsed[name] = SEVERITIES.index(raw)
        elif kind == ASSET_TYPE:
            if raw not in ASSET_TYPES:
                raise FilterError(f"{name} must be one of {', '.join(ASSET_TYPES)}, got {raw!r}")
            parsed[name] = ASSET_TYPES.index(raw)
        else:
            parsed[name] = raw
    if resource == "vulnerabilities" and not parsed.get("includeVulnerabilitiesWithoutSlas", False):
        parsed["includeVulnerabilitiesWithoutSlas"] = False  # absent and `false` are the same list
    return parsed


def _parse_date(name: str, raw: str) -> float:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise FilterError(f"{name} must be an RFC 3339 date-time, got {raw!r}") from None
    if value.tzinfo is None:
        raise FilterError(f"{name} must carry a timezone (e.g. 'Z'), got {raw!r}")
    return value.timestamp()


def filter_key(parsed: Mapping[str, Any]) -> str:
    """A canonical text for a parsed filter set: equal filters give equal keys."""
    return "&".join(f"{name}={parsed[name]!r}" for name in sorted(parsed))


def matches(data: Dataset, resource: Resource, index: int, parsed: Mapping[str, Any]) -> bool:
    """Whether the record of `resource` at internal `index` passes the `parsed` filters (whether it is
    served or not)."""
    if resource == "vulnerabilities":
        return bool(_select_vulnerabilities(data, parsed, [index]))
    if resource == "vulnerability-remediations":
        return bool(_select_remediations(data, parsed, [index]))
    if resource == "vulnerable-assets":
        return bool(_select_assets(data, parsed, [index]))
    return True


CacheKey = tuple[int, int, str, str]  # (dataset version, resource revision, resource, filter key)


class Selector:
    """Selects the records matching parsed filters, in serve order; keeps recent selections cached
    (a walk over a million records takes a while and every page of a chain repeats it). A churn event
    is applied to the cached selections of its resource (`apply`) rather than dropping them."""

    def __init__(self, dataset: Dataset, *, cache_size: int = 32) -> None:
        self.dataset = dataset
        self._cache: OrderedDict[CacheKey, tuple[Mapping[str, Any], Sequence[int]]] = OrderedDict()
        self._cache_size = cache_size

    def _key(self, resource: Resource, parsed: Mapping[str, Any]) -> CacheKey:
        revision = self.dataset.revision.get(resource, 0)
        return (self.dataset.version, revision, resource, filter_key(parsed))

    def select(self, resource: Resource, parsed: Mapping[str, Any]) -> Sequence[int]:
        """Internal indexes of the matching records of `resource`, in serve order."""
        key = self._key(resource, parsed)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached[1]
        if resource == "vulnerabilities":
            selected = _select_vulnerabilities(self.dataset, parsed)
        elif resource == "vulnerability-remediations":
            selected = _select_remediations(self.dataset, parsed)
        elif resource == "vulnerable-assets":
            selected = _select_assets(self.dataset, parsed)
        else:
            selected = self.dataset.order(resource)
        if not isinstance(selected, array):
            selected = array("i", selected)  # 4 bytes a row instead of a list's pointer and int object
        self._cache[key] = (parsed, selected)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return selected

    def apply(self, event: ChurnEvent) -> None:
        """Bring the cached selections of `event.resource` up to date with the event: deleted records
        out, inserted ones that match in, in serve order (much cheaper than selecting afresh)."""
        data, resource = self.dataset, checked_resource(event.resource)
        serve_key = data.serve_key(resource)
        updated: OrderedDict[CacheKey, tuple[Mapping[str, Any], Sequence[int]]] = OrderedDict()
        for (version, revision, name, text), (parsed, rows) in self._cache.items():
            if name != resource:
                updated[(version, revision, name, text)] = (parsed, rows)
            elif version == data.version and revision == event.revision_before:
                added = [k for k in event.inserted if matches(data, resource, k, parsed)]
                rows = splice(rows, serve_key, remove=event.deleted, add=added)
                updated[(version, event.revision_after, name, text)] = (parsed, rows)
        self._cache = updated


def _integration_index(integration_id: str) -> int:
    for index, spec in enumerate(INTEGRATIONS):
        if spec.integration_id == integration_id:
            return index
    return -1


def _in_window(ts: int, after: float | None, before: float | None) -> bool:
    return ts >= 0 and (after is None or ts >= after) and (before is None or ts < before)


def _flaw_matches(flaw: Flaw, f: Mapping[str, Any]) -> bool:
    needle = f.get("q", "").lower()
    return (
        (
            "q" not in f
            or needle in flaw.name.lower()
            or needle in flaw.description.lower()
            or (flaw.package is not None and needle in flaw.package.lower())
        )
        and ("externalVulnerabilityId" not in f or flaw.name == f["externalVulnerabilityId"])
        and ("isFixAvailable" not in f or (flaw.fixed_version is not None) == f["isFixAvailable"])
        and ("packageIdentifier" not in f or flaw.package == f["packageIdentifier"])
        and ("severity" not in f or flaw.severity == f["severity"])
    )


def _select_vulnerabilities(
    data: Dataset, f: Mapping[str, Any], rows: Sequence[int] | None = None
) -> Sequence[int]:
    """The rows passing `f`: of the served list, or of `rows` (in their order) when given."""
    include_without_sla = f["includeVulnerabilitiesWithoutSlas"]
    if rows is None:
        rows = data.order("vulnerabilities", include_without_sla=include_without_sla)
    elif not include_without_sla:
        remediate_by = data.v_remediate_by
        rows = [s for s in rows if remediate_by[s] >= 0]
    flaw_filters = {"q", "externalVulnerabilityId", "isFixAvailable", "packageIdentifier", "severity"}
    if flaw_filters & f.keys():
        flaws, v_flaw = data.flaws, data.v_flaw
        if len(rows) < len(flaws):  # a few records (churn): test just their flaws
            rows = [s for s in rows if _flaw_matches(flaws[v_flaw[s]], f)]
        else:
            allowed = bytearray(_flaw_matches(flaw, f) for flaw in flaws)
            rows = [s for s in rows if allowed[v_flaw[s]]]
    if "integrationId" in f:
        wanted = _integration_index(f["integrationId"])
        v_integration = data.v_integration
        rows = [s for s in rows if v_integration[s] == wanted]
    if "vulnerableAssetId" in f:
        v_asset, asset_id = data.v_asset, data.asset_id
        rows = [s for s in rows if asset_id(v_asset[s]) == f["vulnerableAssetId"]]
    if "isDeactivated" in f:
        deactivated_on, want = data.v_deactivated_on, f["isDeactivated"]
        rows = [s for s in rows if (deactivated_on[s] >= 0) == want]
    if "slaDeadlineAfterDate" in f or "slaDeadlineBeforeDate" in f:
        after, before = f.get("slaDeadlineAfterDate"), f.get("slaDeadlineBeforeDate")
        remediate_by = data.v_remediate_by
        rows = [s for s in rows if _in_window(remediate_by[s], after, before)]
    return rows


def _select_remediations(
    data: Dataset, f: Mapping[str, Any], rows: Sequence[int] | None = None
) -> Sequence[int]:
    if rows is None:
        rows = data.order("vulnerability-remediations")
    r_vuln = data.r_vuln
    if "integrationId" in f:
        wanted, v_integration = _integration_index(f["integrationId"]), data.v_integration
        rows = [r for r in rows if v_integration[r_vuln[r]] == wanted]
    if "severity" in f:
        flaws, v_flaw = data.flaws, data.v_flaw
        rows = [r for r in rows if flaws[v_flaw[r_vuln[r]]].severity == f["severity"]]
    if "isRemediatedOnTime" in f:
        remediate_by, r_date, want = data.v_remediate_by, data.r_date, f["isRemediatedOnTime"]
        rows = [
            r for r in rows if (remediate_by[r_vuln[r]] < 0 or r_date[r] <= remediate_by[r_vuln[r]]) == want
        ]
    if "remediatedAfterDate" in f or "remediatedBeforeDate" in f:
        after, before, r_date = f.get("remediatedAfterDate"), f.get("remediatedBeforeDate"), data.r_date
        rows = [r for r in rows if _in_window(r_date[r], after, before)]
    return rows


def _select_assets(data: Dataset, f: Mapping[str, Any], rows: Sequence[int] | None = None) -> Sequence[int]:
    if rows is None:
        rows = data.order("vulnerable-assets")
    if "q" in f:
        needle, names = f["q"].lower(), data.asset_names
        rows = [a for a in rows if needle in names[a].lower()]
    if "integrationId" in f:
        wanted, integrations = _integration_index(f["integrationId"]), data.asset_integrations
        rows = [a for a in rows if wanted in integrations[a]]
    if "assetType" in f:
        asset_type = data.asset_type
        rows = [a for a in rows if asset_type[a] == f["assetType"]]
    if "assetExternalAccountId" in f:
        account, integrations = f["assetExternalAccountId"], data.asset_integrations
        rows = [a for a in rows if any(scanner_account(a, k) == account for k in integrations[a])]
    return rows
