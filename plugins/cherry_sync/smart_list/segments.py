"""The smart list's segments: which tag each gets in a practice, and what they mean (plain Python, no I/O).

Membership itself is computed in SQL by the store (`SyncStore.smart_list_changes`); `segments_of` here is the
same rule for one patient, used to check the SQL and to read a CRM value the way the sync wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from cherry_sync.domain.cherry_records import AccountStatus
from cherry_sync.domain.mapping import ACCOUNT_STATUS_OPTIONS
from cherry_sync.registry import PracticeConfig, SegmentOptions
from cherry_sync.store.smart_lists import ACTIVE, SEGMENTS

SEGMENT_DESCRIPTIONS = MappingProxyType(
    {
        "all": "every Cherry patient synced to a CRM contact",
        "active": "Cherry account ACTIVE",
        "inactive": "Cherry account in any other status",
        "balance_over_threshold": "available balance at or above the practice's threshold",
        "increase_eligible": "eligible for a limit increase",
    }
)


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
    """The segments a member is in (the rule the store's SQL implements)."""
    found = {"all", "active" if account_status == ACTIVE else "inactive"}
    if balance_available is not None and balance_available >= threshold:
        found.add("balance_over_threshold")
    if increase_eligible:
        found.add("increase_eligible")
    return frozenset(found)


def expected_status_option(account_status: str | None) -> str | None:
    """The "Cherry Account Status" option the sync writes for a stored status (None: nothing written)."""
    try:
        return ACCOUNT_STATUS_OPTIONS[AccountStatus(account_status)]
    except (ValueError, KeyError):
        return None
