"""The smart list's segments, defined once: who is in each, and which tag each gets in a practice.

`SEGMENT_DEFINITIONS` declares each segment as a `Rule` over three stored fields of a member (a stored patient with
a CRM contact): `account_status`, `balance_available` and `increase_eligible`. Both evaluations are derived from it:
- `Rule.sql`: a SQL condition, never NULL, with which the store computes membership for a whole practice in one
  statement (`SyncStore.smart_list_changes`, `smart_list_counts`, `smart_list_members`);
- `Rule.holds`: the same rule for one member in Python (`segments_of`), to check the SQL and to read a CRM value
  the way the sync wrote it.
A missing value (NULL / None) satisfies no comparison: no balance is not over the threshold, no status is not
ACTIVE (so inactive), a missing flag is false.

Plain Python and SQL expressions, no I/O: the store imports this module, so it imports nothing of the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, false, func, not_, true

from cherry_sync.domain.cherry_records import AccountStatus
from cherry_sync.domain.mapping import ACCOUNT_STATUS_OPTIONS
from cherry_sync.registry import PracticeConfig, SegmentOptions


class MemberValues(NamedTuple):
    """The stored fields a segment rule reads, for one member."""

    account_status: str | None
    balance_available: Decimal | None
    increase_eligible: bool | None


class Rule(ABC):
    """A membership rule, evaluated in SQL (over a whole practice) or in Python (for one member), alike."""

    @abstractmethod
    def holds(self, member: MemberValues, threshold: Decimal) -> bool:
        """Whether `member` is in the segment."""

    @abstractmethod
    def sql(self, columns: Mapping[str, ColumnElement], threshold: Decimal) -> ColumnElement[bool]:
        """The same rule as a SQL condition over `columns` (field name -> SQL expression); never NULL."""


@dataclass(frozen=True)
class Every(Rule):
    """Every member."""

    def holds(self, member: MemberValues, threshold: Decimal) -> bool:
        return True

    def sql(self, columns: Mapping[str, ColumnElement], threshold: Decimal) -> ColumnElement[bool]:
        return true()


@dataclass(frozen=True)
class Equals(Rule):
    """`field` is `value` (a missing value is not)."""

    field: str
    value: str

    def holds(self, member: MemberValues, threshold: Decimal) -> bool:
        return getattr(member, self.field) == self.value

    def sql(self, columns: Mapping[str, ColumnElement], threshold: Decimal) -> ColumnElement[bool]:
        column = columns[self.field]
        return and_(column.is_not(None), column == self.value)


@dataclass(frozen=True)
class Not(Rule):
    """Members the inner rule does not hold for (a rule never NULL negates to one never NULL)."""

    rule: Rule

    def holds(self, member: MemberValues, threshold: Decimal) -> bool:
        return not self.rule.holds(member, threshold)

    def sql(self, columns: Mapping[str, ColumnElement], threshold: Decimal) -> ColumnElement[bool]:
        return not_(self.rule.sql(columns, threshold))


@dataclass(frozen=True)
class AtLeastThreshold(Rule):
    """`field` is at or above the practice's threshold (a missing value is not)."""

    field: str

    def holds(self, member: MemberValues, threshold: Decimal) -> bool:
        value = getattr(member, self.field)
        return value is not None and value >= threshold

    def sql(self, columns: Mapping[str, ColumnElement], threshold: Decimal) -> ColumnElement[bool]:
        column = columns[self.field]
        return and_(column.is_not(None), column >= threshold)


@dataclass(frozen=True)
class IsTrue(Rule):
    """The flag `field` is true (missing: false)."""

    field: str

    def holds(self, member: MemberValues, threshold: Decimal) -> bool:
        return bool(getattr(member, self.field))

    def sql(self, columns: Mapping[str, ColumnElement], threshold: Decimal) -> ColumnElement[bool]:
        return func.coalesce(columns[self.field], false())


@dataclass(frozen=True)
class Segment:
    """One segment: its name (the registry's `options.segments.tags` key), its rule and what it means."""

    name: str
    rule: Rule
    description: str


_ACTIVE = Equals("account_status", AccountStatus.ACTIVE.value)

SEGMENT_DEFINITIONS = (
    Segment("all", Every(), "every Cherry patient synced to a CRM contact"),
    Segment("active", _ACTIVE, "Cherry account ACTIVE"),
    Segment("inactive", Not(_ACTIVE), "Cherry account in any other status, or none"),
    Segment(
        "balance_over_threshold",
        AtLeastThreshold("balance_available"),
        "available balance at or above the practice's threshold",
    ),
    Segment("increase_eligible", IsTrue("increase_eligible"), "eligible for a limit increase"),
)
SEGMENTS = tuple(segment.name for segment in SEGMENT_DEFINITIONS)
SEGMENT_RULES: Mapping[str, Rule] = MappingProxyType({s.name: s.rule for s in SEGMENT_DEFINITIONS})


@dataclass(frozen=True)
class SegmentPlan:
    """One practice's segments: segment name -> CRM tag, and the balance threshold."""

    tags: Mapping[str, str]
    threshold: Decimal

    @classmethod
    def from_options(cls, options: SegmentOptions) -> SegmentPlan:
        configured = options.tags.model_dump()
        return cls(
            tags=MappingProxyType({name: configured[name] for name in SEGMENTS}), threshold=options.balance_threshold
        )

    @classmethod
    def from_practice(cls, practice: PracticeConfig) -> SegmentPlan:
        return cls.from_options(practice.options.segments)

    @property
    def all_tag(self) -> str:
        """The tag every member carries (what "in the smart list" means)."""
        return self.tags["all"]

    @property
    def managed_tags(self) -> frozenset[str]:
        return frozenset(self.tags.values())


def segments_of(
    account_status: str | None, balance_available: Decimal | None, increase_eligible: bool | None, threshold: Decimal
) -> frozenset[str]:
    """The segments a member is in: `SEGMENT_DEFINITIONS` evaluated in Python (the store evaluates them in SQL)."""
    member = MemberValues(account_status, balance_available, increase_eligible)
    return frozenset(s.name for s in SEGMENT_DEFINITIONS if s.rule.holds(member, threshold))


def expected_status_option(account_status: str | None) -> str | None:
    """The "Cherry Account Status" option the sync writes for a stored status (None: nothing written)."""
    try:
        return ACCOUNT_STATUS_OPTIONS[AccountStatus(account_status)]
    except (ValueError, KeyError):
        return None
