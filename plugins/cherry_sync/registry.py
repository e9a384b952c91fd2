"""The practice registry: which practices Cherry Sync serves, read from a versioned YAML file.

A practice is one Cherry API key plus one CRM location. The Cherry key is held in an Airflow connection the registry
names; the CRM location is reached either with its Private Integration Token (`crm_auth: pit`, the default: an
Airflow connection `crm_conn_id` holding the token and the location id) or through the agency's HighLevel marketplace
app (`crm_auth: oauth`: only `crm_location_id`; the app's connection and tokens are shared, see
`cherry_sync.hooks.oauth`). Secrets never live in the file. Each entry is validated on its own: a bad entry is reported with its practice
and the offending field, and the other practices keep syncing. Only a file that cannot be read as a YAML list is
fatal (`RegistryFileError`).

`load_registry()` validates the file; a DAG run calls it once, in its first task, and hands the practice tasks
their validated entries (`cherry_sync.batches`). When a DAG file is parsed only the light read of
`cherry_sync.registry_file` runs (the trigger forms' practice picker, the refresh's event Assets): no validation.
`python -m cherry_sync.registry [PATH]` checks a file and prints what is wrong; with `--zones` it also asks Cherry
and the CRM (through each enabled practice's Airflow connections) whether the practice's three time zones agree.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cherry_sync.context import OAUTH_APP_CONN_ID, default_registry_path
from cherry_sync.domain.contract import MAX_MONEY, MONEY_PLACES, Email, TimeZoneName, decimal_type
from cherry_sync.reasons import ReasonCode
from cherry_sync.registry_file import CONN_ID_RE, MAX_SLUG, SLUG_RE, RegistryFileError, read_entries

log = logging.getLogger(__name__)


LOCATION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # HighLevel ids; 128: the store's external id columns


def _check_slug(value: str) -> str:
    if len(value) > MAX_SLUG or not SLUG_RE.match(value):
        raise ValueError(f"use lowercase letters, digits and single hyphens, at most {MAX_SLUG} characters")
    return value


def _check_conn_id(value: str) -> str:
    if not CONN_ID_RE.match(value) or len(value) > 250:
        raise ValueError("an Airflow connection id is letters, digits, '_', '-' and '.'")
    return value


def _check_location_id(value: str) -> str:
    if not LOCATION_ID_RE.match(value):
        raise ValueError("a CRM location id is letters, digits, '_' and '-' (at most 128)")
    return value


def _check_tag(value: str) -> str:
    # HighLevel stores tags lowercased and a comma would split one tag into two.
    if not value.strip() or value != value.strip():
        raise ValueError("a tag must be non-empty, without leading or trailing spaces")
    if "," in value:
        raise ValueError("a tag must not contain a comma")
    if value != value.lower():
        raise ValueError("tags are lowercase (the CRM lowercases them)")
    if len(value) > 100 or any(ord(ch) < 32 for ch in value):
        raise ValueError("a tag is at most 100 printable characters")
    return value


def _money(value: Decimal) -> Decimal:
    # One spelling per amount, so 1000, 1000.0 and "1000.00" fingerprint alike.
    return value.quantize(Decimal("0.01"))


Slug = Annotated[str, AfterValidator(_check_slug)]
ConnId = Annotated[str, AfterValidator(_check_conn_id)]
LocationId = Annotated[str, AfterValidator(_check_location_id)]
Tag = Annotated[str, AfterValidator(_check_tag)]
Text = Annotated[str, Field(min_length=1, max_length=200)]
# Amounts follow the contract's money rule (a plain decimal, two places at most), whether YAML wrote them as
# numbers or strings.
PositiveAmount = Annotated[
    decimal_type(
        ReasonCode.INVALID_MONEY, places=MONEY_PLACES, maximum=MAX_MONEY, required=True, positive=True, what="amount"
    ),
    AfterValidator(_money),
]
Threshold = Annotated[
    decimal_type(ReasonCode.INVALID_MONEY, places=MONEY_PLACES, maximum=MAX_MONEY, required=True, what="amount"),
    AfterValidator(_money),
]


class _Strict(BaseModel):
    # extra="forbid": a misspelt option is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False, hide_input_in_errors=True)


class SegmentTags(_Strict):
    """The CRM tag applied for each segment; names must differ within a practice."""

    all: Tag = "cherry-patient"
    active: Tag = "cherry-active"
    inactive: Tag = "cherry-inactive"
    balance_over_threshold: Tag = "cherry-balance-5k-plus"
    increase_eligible: Tag = "cherry-increase-eligible"

    @model_validator(mode="after")
    def _distinct(self) -> SegmentTags:
        names = list(self.model_dump().values())
        if len(set(names)) != len(names):
            raise ValueError("each segment needs its own tag; two segments share one")
        return self


class SegmentOptions(_Strict):
    """How patients are segmented into CRM tags."""

    balance_threshold: Threshold = Decimal("5000.00")
    tags: SegmentTags = SegmentTags()


class OpportunityOptions(_Strict):
    """Where Cherry payments are tracked as CRM opportunities (a pipeline and stage, by name or id)."""

    pipeline: Text
    stage: Text


class AlertOptions(_Strict):
    """When the operators are told that a practice's runs look wrong (docs/alerts.md).

    Rates are percentages (0-100) a run must exceed to raise its alert; `silent_after_runs` is how many successful
    runs in a row must have written something before a run that writes nothing counts as silent.
    """

    enabled: StrictBool = True
    rejection_rate_percent: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False, strict=True)] = 10.0
    crm_failure_rate_percent: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False, strict=True)] = 5.0
    silent_after_runs: Annotated[int, Field(ge=1, le=100, strict=True)] = 5


class PracticeOptions(_Strict):
    """Per-practice features; everything optional with conservative defaults."""

    patient_estimates: StrictBool = False
    estimate_amounts: tuple[PositiveAmount, ...] = Field(
        default=(Decimal("1000.00"), Decimal("2500.00"), Decimal("5000.00")), min_length=1
    )
    opportunity: OpportunityOptions | None = None
    report_recipients: tuple[Email, ...] = ()
    segments: SegmentOptions = SegmentOptions()
    alerts: AlertOptions = AlertOptions()

    @model_validator(mode="after")
    def _distinct_amounts(self) -> PracticeOptions:
        if len(set(self.estimate_amounts)) != len(self.estimate_amounts):
            raise ValueError("estimate_amounts lists an amount twice")
        return self


class EventDelivery(_Strict):
    """How the refresh learns of a practice's Cherry events (docs/webhooks.md).

    `webhooks: true`: Cherry posts them to the webhook receiver (the practice's Cherry connection holds the signing
    secret, extra `webhook_secret`); otherwise the event watcher reads Cherry's feed every `poll_seconds`. Either
    way the hourly reconciliation run reads the feed from the stored cursor.
    """

    webhooks: StrictBool = False
    poll_seconds: Annotated[int, Field(ge=5, le=3600)] = 15


class PracticeConfig(_Strict):
    """One practice: its Cherry connection, how it reaches its CRM location, and its options.

    `crm_auth: pit` (default): `crm_conn_id` names the location's connection (its token and `location_id` extra).
    `crm_auth: oauth`: `crm_location_id` names the location, reached through the marketplace app; no CRM connection.
    """

    slug: Slug
    display_name: Text
    timezone: TimeZoneName
    # true: sync in `timezone` even when Cherry's practice zone or the CRM location's zone differs (logged as a
    # warning); false (default): a practice whose three zones differ fails until they agree (sync/zones.py).
    timezone_pinned: StrictBool = False
    cherry_conn_id: ConnId
    crm_auth: Literal["pit", "oauth"] = "pit"
    crm_conn_id: ConnId | None = Field(default=None, validate_default=True)
    crm_location_id: LocationId | None = Field(default=None, validate_default=True)
    enabled: StrictBool = True
    options: PracticeOptions = PracticeOptions()
    events: EventDelivery = EventDelivery()

    # Checked per field (not once per entry), so a missing or misplaced setting is reported under its own name,
    # next to the entry's other errors. `crm_auth` is declared before both, so it is known here when valid.
    @field_validator("crm_conn_id")
    @classmethod
    def _conn_for_pit(cls, value: str | None, info: ValidationInfo) -> str | None:
        auth = info.data.get("crm_auth")
        if auth == "pit" and value is None:
            raise ValueError("Field required (the CRM location's connection; or set crm_auth: oauth)")
        if auth == "oauth" and value is not None:
            raise ValueError("crm_auth: oauth takes no crm_conn_id: the marketplace app's connection serves it")
        return value

    @field_validator("crm_location_id")
    @classmethod
    def _location_for_oauth(cls, value: str | None, info: ValidationInfo) -> str | None:
        auth = info.data.get("crm_auth")
        if auth == "oauth" and value is None:
            raise ValueError("Field required (crm_auth: oauth names the CRM location id here)")
        if auth == "pit" and value is not None:
            raise ValueError(
                "only for crm_auth: oauth; a pit practice's location is its connection's location_id extra"
            )
        return value

    @property
    def crm_connection_id(self) -> str:
        """The Airflow connection this practice's CRM calls use: its own (pit) or the marketplace app's (oauth)."""
        if self.crm_auth == "oauth":
            return OAUTH_APP_CONN_ID
        assert self.crm_conn_id is not None  # checked by _conn_for_pit
        return self.crm_conn_id

    def fingerprint(self) -> str:
        """A stable hash of this practice's whole configuration (changes whenever any setting does)."""
        # Options left at a default added later are left out, so the fingerprints of entries written before the
        # option existed stay put.
        exclude = set()
        if self.crm_auth == "pit":
            exclude.update({"crm_auth", "crm_location_id"})
        else:
            exclude.add("crm_conn_id")
        if not self.timezone_pinned:
            exclude.add("timezone_pinned")
        if self.events == EventDelivery():
            exclude.add("events")
        excluded: dict[str, Any] = dict.fromkeys(exclude, True)
        if self.options.alerts == AlertOptions():
            excluded["options"] = {"alerts"}
        canonical = json.dumps(
            self.model_dump(mode="json", exclude=excluded or None), sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RegistryError:
    """One problem with one registry entry: which practice, which field (dotted path), what is wrong."""

    practice: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.practice}: {self.field}" if self.field else self.practice
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Registry:
    """The valid practices (in file order) and the errors found in the others."""

    practices: tuple[PracticeConfig, ...]
    errors: tuple[RegistryError, ...]
    path: Path | None = None

    def enabled(self) -> list[PracticeConfig]:
        """Valid practices to sync now (`enabled: true`)."""
        return [practice for practice in self.practices if practice.enabled]

    def get(self, slug: str) -> PracticeConfig | None:
        """The valid practice with this slug, or None."""
        return next((practice for practice in self.practices if practice.slug == slug), None)

    def fingerprint(self, slug: str) -> str:
        """Stable hash of one practice's configuration (what the store's practices mirror keeps)."""
        practice = self.get(slug)
        if practice is None:
            raise KeyError(f"no valid practice {slug!r} in the registry")
        return practice.fingerprint()

    def errors_for(self, practice: str) -> list[RegistryError]:
        return [error for error in self.errors if error.practice == practice]


def load_registry(path: str | Path | None = None) -> Registry:
    """Read and validate the registry file; see the module docstring for what counts as fatal."""
    path = Path(path) if path is not None else default_registry_path()
    entries = _read_entries(path)
    registry = parse_entries(entries, path=path)
    log.info(
        "registry %s: %d valid practices (%d enabled), %d errors",
        path.name,
        len(registry.practices),
        len(registry.enabled()),
        len(registry.errors),
    )
    for error in registry.errors:
        log.warning("registry error: %s", error)
    return registry


def _read_entries(path: Path) -> list[Any]:
    # libyaml, and one parse per content of the file per process (shared with the DAG files' parse-time reads).
    return read_entries(path)


def parse_entries(entries: list[Any], *, path: Path | None = None) -> Registry:
    """Validate already-loaded registry entries (a list of mappings), entry by entry."""
    practices: list[PracticeConfig] = []
    errors: list[RegistryError] = []
    first_entry_of: dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        label = _label(entry, number)
        if not isinstance(entry, dict):
            errors.append(RegistryError(label, "", "an entry must be a mapping of settings"))
            continue
        slug = entry.get("slug")
        if isinstance(slug, str) and slug in first_entry_of:
            errors.append(
                RegistryError(label, "slug", f"duplicate slug; entry #{first_entry_of[slug]} already uses it")
            )
            continue
        if isinstance(slug, str):
            first_entry_of[slug] = number
        try:
            practices.append(PracticeConfig.model_validate(entry))
        except ValidationError as exc:
            errors.extend(_errors_from(exc, label))
    return Registry(practices=tuple(practices), errors=tuple(errors), path=path)


def _label(entry: Any, number: int) -> str:
    slug = entry.get("slug") if isinstance(entry, dict) else None
    if isinstance(slug, str) and SLUG_RE.match(slug) and len(slug) <= MAX_SLUG:
        return slug
    return f"entry #{number}"


def _errors_from(exc: ValidationError, label: str) -> list[RegistryError]:
    # include_input=False: the offending value is not echoed (an entry could hold something it should not).
    details = exc.errors(include_url=False, include_input=False, include_context=False)
    failed_items = {detail["loc"][:-1] for detail in details if detail["loc"]}
    found = []
    for detail in details:
        if detail["type"] == "too_short" and detail["loc"] in failed_items:
            continue  # "too few items" only because its items failed: the item errors say it better
        field = ".".join(str(part) for part in detail["loc"])
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = "unknown setting (misspelt?)"
        elif field.startswith("options.report_recipients."):
            message = "not a valid email address"
        found.append(RegistryError(label, field, message))
    return found


def main(argv: list[str] | None = None) -> int:
    """Check a registry file: print its practices and any errors; exit 1 when there are errors.

    `--zones`: also compare each enabled practice's zone with Cherry's practice zone and its CRM location's zone
    (one `GET /v1/practice` and one `GET /locations/{id}` each); a disagreement, or a zone that could not be read,
    is an error.
    """
    args = sys.argv[1:] if argv is None else argv
    zones = "--zones" in args
    paths = [arg for arg in args if arg != "--zones"]
    try:
        registry = load_registry(paths[0] if paths else None)
    except RegistryFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    for practice in registry.practices:
        state = "enabled" if practice.enabled else "disabled"
        pinned = ", pinned" if practice.timezone_pinned else ""
        print(f"ok     {practice.slug} ({state}, {practice.timezone}{pinned})")
    for error in registry.errors:
        print(f"error  {error}")
    failed = bool(registry.errors)
    if zones:
        from cherry_sync.sync.zones import check_practice

        for practice in registry.enabled():
            report = check_practice(practice)
            print(f"{'zones ' if report.ok else 'error '} {report}")
            failed = failed or not report.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
