"""Provision the 14 Cherry contact custom fields on a CRM location, idempotently (matched by fieldKey)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from cherry_sync.context import PracticeContext
from cherry_sync.domain import FieldConflict, plan_field_provisioning
from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.reasons import ReasonCode
from cherry_sync.store import RunCounts

log = logging.getLogger(__name__)


class FieldConflictError(CherrySyncError):
    """Fields exist with our keys but another data type: the practice fails until they are fixed by hand."""

    reason_code = ReasonCode.CUSTOM_FIELD_CONFLICT
    disposition = Disposition.FAIL

    def __init__(self, conflicts: tuple[FieldConflict, ...]) -> None:
        self.conflicts = conflicts
        described = ", ".join(
            f"{c.field_key} is {c.actual_type or '?'} (needs {c.expected_type.value})" for c in conflicts
        )
        super().__init__(
            f"custom fields with the wrong data type: {described}. HighLevel cannot change a field's type: "
            "rename or delete those fields in the CRM, then re-run."
        )


@dataclass
class ProvisionResult:
    """Field ids by key, and what provisioning had to do (field keys only)."""

    field_ids: dict[str, str]
    created: list[str] = field(default_factory=list)
    options_added: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {"created": self.created, "options_added": self.options_added, "fields": len(self.field_ids)}


def provision_fields(crm: AesthetixCrmHook, *, dry_run: bool = False) -> ProvisionResult:
    """Create missing fields, add missing options; raise `FieldConflictError` on a wrong-typed field.

    In a dry run nothing is written and fields that would be created get placeholder ids.
    """
    plan = plan_field_provisioning(crm.list_custom_fields())
    if not plan.can_sync:
        raise FieldConflictError(plan.conflicts)
    created: dict[str, str] = {}
    for spec in plan.to_create:
        if dry_run:
            created[spec.field_key] = f"dry-run-{spec.field_key}"
            continue
        record = crm.create_custom_field(spec.create_body())
        created[spec.field_key] = str(record["id"])
    for update in plan.option_updates:
        if not dry_run:
            crm.update_custom_field(update.field_id, update.body)
    result = ProvisionResult(
        field_ids=plan.field_ids(created),
        created=sorted(created),
        options_added=sorted(u.field_key for u in plan.option_updates),
    )
    if result.created or result.options_added:
        log.info("custom fields: %d created, %d option lists extended", len(result.created), len(result.options_added))
    return result


@dataclass
class ProvisionSummary:
    """One practice's provisioning, for XCom and the run ledger (field keys and counts only)."""

    slug: str
    dry_run: bool
    fields: dict[str, Any]
    api_calls: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"practice": self.slug, "dry_run": self.dry_run, "fields": self.fields, "api_calls": self.api_calls}

    def ledger_counts(self) -> RunCounts:
        """Provisioning reads and writes no patient: the ledger keeps its API calls and the fields in the details."""
        return RunCounts()


def provision_practice_fields(ctx: PracticeContext, *, dry_run: bool = False) -> ProvisionSummary:
    """Provision the practice's CRM location and remember which location the practice is on."""
    result = provision_fields(ctx.crm, dry_run=dry_run)
    ctx.store.set_practice_ids(ctx.slug, crm_location_id=ctx.crm.location_id)
    return ProvisionSummary(ctx.slug, dry_run, result.summary(), ctx.api_calls())
