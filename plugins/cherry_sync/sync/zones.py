"""One agreed time zone per practice: the registry's, Cherry's practice zone and the CRM location's, compared here.

Cherry counts a practice's days (its metrics, "completed on" dates) in its practice zone, the CRM shows dates in the
location's zone, and the sync turns Cherry timestamps into calendar dates in the registry's `timezone`. When the three
disagree, a date lands a day off near midnight, so the practice does not run until they agree, unless the registry
pins its zone (`timezone_pinned: true`): then the registry's zone is used and the disagreement is only logged.

`compare_zones` is the comparison (plain values, no I/O); `read_zones` asks both APIs (one `GET /v1/practice`, one
`GET /locations/{id}`); `agreed_zone` is what a practice run calls first. The registry check
(`python -m cherry_sync.registry --zones`), the deploy preflight and every DAG that uses the zone go through them.
Zone names are configuration, not patient data: messages name them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from airflow.sdk.exceptions import AirflowNotFoundException

from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.hooks import errors
from cherry_sync.hooks.base import RetrySettings
from cherry_sync.hooks.cherry import CherryHook
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.hooks.pacing import MemoryPacer
from cherry_sync.reasons import ReasonCode
from cherry_sync.registry import PracticeConfig
from cherry_sync.runtime import crm_hook

log = logging.getLogger(__name__)

PIN_OPTION = "timezone_pinned: true"


class TimezoneMismatch(CherrySyncError):
    """The registry, Cherry and the CRM location name different time zones for a practice (and it is not pinned).

    The practice fails until a person makes them agree; the other practices are not affected.
    """

    reason_code = ReasonCode.TIMEZONE_MISMATCH
    disposition = Disposition.FAIL

    def __init__(self, zones: PracticeZones) -> None:
        self.zones = zones
        super().__init__(zones.describe())

    def __reduce__(self):
        return (type(self), (self.zones,))


@dataclass(frozen=True, slots=True)
class PracticeZones:
    """The three zones of one practice (None: the API gave none) and whether the registry pins its own."""

    slug: str
    registry: str
    cherry: str | None
    crm: str | None
    pinned: bool = False

    @property
    def agree(self) -> bool:
        return self.cherry == self.registry and self.crm == self.registry

    @property
    def zone(self) -> str:
        """The zone the practice's dates are computed in: the registry's (equal to the others unless pinned)."""
        return self.registry

    def describe(self) -> str:
        """One sentence: the three zone names and what to change."""
        said = (
            f"time zones disagree: the registry says {self.registry}, Cherry keeps the practice in "
            f"{_name(self.cherry)} and the CRM location is in {_name(self.crm)}"
        )
        if self.agree:
            return f"time zones agree: {self.registry}"
        return f"{said}; {self._fix()}, or pin the registry's zone with `{PIN_OPTION}`"

    def _fix(self) -> str:
        registry, cherry, crm = self.registry, self.cherry, self.crm
        if cherry and cherry == crm:
            return f"set the registry's timezone to {cherry}"
        if crm == registry:
            return f"set the practice's time zone in Cherry to {registry}"
        if cherry == registry:
            return f"set the CRM location's time zone (Settings > Business Profile) to {registry}"
        return "make all three the same zone"


def _name(zone: str | None) -> str:
    return zone or "no time zone"


def compare_zones(
    slug: str, registry: str, cherry: str | None, crm: str | None, *, pinned: bool = False
) -> PracticeZones:
    """The comparison: exact IANA names (an alias such as US/Eastern counts as different; use canonical names)."""
    return PracticeZones(slug, registry, cherry or None, crm or None, pinned)


def read_zones(practice: PracticeConfig, cherry: CherryHook, crm: AesthetixCrmHook) -> PracticeZones:
    """Ask Cherry (`GET /v1/practice`) and the CRM (`GET /locations/{id}`) once each; API errors propagate."""
    cherry_zone = cherry.get_practice().get("timezone")
    crm_zone = crm.get_location().get("timezone")
    return compare_zones(
        practice.slug,
        practice.timezone,
        cherry_zone if isinstance(cherry_zone, str) else None,
        crm_zone if isinstance(crm_zone, str) else None,
        pinned=practice.timezone_pinned,
    )


def enforce(zones: PracticeZones) -> str:
    """The zone to use; raises `TimezoneMismatch` when they disagree and the registry does not pin its zone."""
    if zones.agree:
        return zones.zone
    if not zones.pinned:
        raise TimezoneMismatch(zones)
    log.warning(
        "practice %s: %s; the registry pins its zone (%s), so dates are computed in %s",
        zones.slug,
        zones.describe().split(";")[0],
        PIN_OPTION,
        zones.zone,
    )
    return zones.zone


def agreed_zone(practice: PracticeConfig, cherry: CherryHook, crm: AesthetixCrmHook) -> str:
    """Start of a practice run: the practice's zone, or `TimezoneMismatch` (nothing written either way)."""
    return enforce(read_zones(practice, cherry, crm))


# -- checking every practice at once (registry check, deploy preflight) --------------------------------------------

# One quick look per API: a check that waits minutes for an unreachable API helps nobody.
QUICK_RETRY = RetrySettings(max_attempts=2, max_elapsed_seconds=20.0, backoff_initial=0.5, read_timeout=15.0)


@dataclass(frozen=True, slots=True)
class ZoneReport:
    """One practice's zone check: the zones read (None when an API could not be asked) and any problem."""

    slug: str
    zones: PracticeZones | None
    problem: str | None = None  # one sentence: the disagreement, or why the zones could not be read
    reason_code: ReasonCode | None = None  # `timezone_mismatch`, `connection_missing`, or the API error's code

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if self.problem:
            return f"{self.slug}: {self.problem}"
        zones = self.zones
        if zones is not None and not zones.agree:
            return f"{self.slug}: {zones.describe().split(';')[0]}; pinned, syncing in {zones.zone}"
        return f"{self.slug}: time zones agree ({zones.zone if zones else '?'})"


def check_practice(
    practice: PracticeConfig, cherry: CherryHook | None = None, crm: AesthetixCrmHook | None = None
) -> ZoneReport:
    """Read and compare one practice's zones through its Airflow connections (or the hooks given)."""
    try:
        cherry = cherry or CherryHook(practice.cherry_conn_id, pacer=MemoryPacer(), retry=QUICK_RETRY)
        crm = crm or crm_hook(practice, MemoryPacer(), retry=QUICK_RETRY)
        zones = read_zones(practice, cherry, crm)
    except errors.ApiError as exc:
        return ZoneReport(practice.slug, None, f"time zones not checked: {exc.describe()}", exc.reason_code)
    except AirflowNotFoundException as exc:
        return ZoneReport(practice.slug, None, f"time zones not checked: {exc}", ReasonCode.CONNECTION_MISSING)
    except CherrySyncError as exc:  # the CRM's OAuth grant is gone, or its tokens cannot be read
        return ZoneReport(practice.slug, None, f"time zones not checked: {exc.describe()}", exc.reason_code)
    if zones.agree or zones.pinned:
        return ZoneReport(practice.slug, zones)
    return ZoneReport(practice.slug, zones, zones.describe(), TimezoneMismatch.reason_code)
