"""Check that the CRM shows what the store says for members: the list columns and the product's tags.

The smart list's columns Account Status and Active Balance are the `contact.cherry_account_status` and
`contact.cherry_account_balance` custom fields the sync keeps current. Verification reads the location's contacts
(`POST /contacts/search`, 500 per call; custom-field ids mapped through `GET .../customFields`) and compares, per
member:
- Account Status with the option the sync writes for the stored status ("Active" / "Inactive");
- Active Balance with the stored balance, to the cent (not compared when Cherry has no balance: the sync never
  clears a field);
- that the contact exists.
A member that disagrees is healed by clearing its `written_hash`: the sync then no longer believes the CRM holds
what it last wrote, and the next backfill (or the next Cherry event for that patient) writes the fields again.
Only a count is reported.

It also reconciles the tags: a tag the product confirmed earlier but that is no longer on the contact (a person
removed it) stops counting as applied, so the push adds it again if the patient is still in that segment.

When it runs (see `verification_due`): when the membership changed this run, when the last verification is
older than the cadence (default 24 h), or on request; never on an unchanged run inside the cadence, so such a run
makes no CRM call at all.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from cherry_sync.domain.crm_values import CENT, parse_crm_number
from cherry_sync.domain.custom_fields import ACCOUNT_BALANCE, ACCOUNT_STATUS, FieldsNotProvisioned, field_ids
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.reasons import ReasonCode
from cherry_sync.smart_list.segments import expected_status_option
from cherry_sync.store import SyncStore

log = logging.getLogger(__name__)

VERIFY_MODES = ("auto", "always", "never")


@dataclass
class Verification:
    """Outcome of one verification (counts only)."""

    ran: bool
    reason: ReasonCode
    members_checked: int = 0
    contacts_read: int = 0
    status_mismatches: int = 0
    balance_mismatches: int = 0
    missing_contacts: int = 0
    mismatched_members: int = 0  # members whose contact is missing or shows another status or balance
    tags_missing: int = 0  # (contact, tag) pairs the product had applied and a person removed
    written_hash_cleared: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def verification_due(
    mode: str, membership_changed: bool, verified_at: datetime | None, every_hours: float, now: datetime
) -> tuple[bool, ReasonCode]:
    """Whether to verify this run, and why (a reason code for the summary)."""
    if mode not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, not {mode!r}")
    if mode == "never":
        return False, ReasonCode.VERIFY_DISABLED
    if mode == "always":
        return True, ReasonCode.VERIFY_REQUESTED
    if membership_changed:
        return True, ReasonCode.MEMBERSHIP_CHANGED
    if verified_at is None:
        return True, ReasonCode.NEVER_VERIFIED
    if now - verified_at >= timedelta(hours=every_hours):
        return True, ReasonCode.VERIFY_CADENCE
    return False, ReasonCode.VERIFY_NOT_DUE


def verify_practice(
    crm: AesthetixCrmHook, store: SyncStore, slug: str, reason: ReasonCode, *, dry_run: bool
) -> Verification:
    """Compare the CRM with the store for every member; heal what differs (unless `dry_run`)."""
    members = store.member_field_values(slug)
    applied = store.contact_tags(slug)
    if not members and not applied:
        return Verification(ran=False, reason=ReasonCode.NO_MEMBERS)
    try:
        ids = field_ids(crm.list_custom_fields())
    except FieldsNotProvisioned:
        # Members exist only after a sync wrote them, and the sync provisions the fields first; if someone deleted
        # a field since, the next sync recreates it. Nothing to compare against until then.
        log.warning("practice %s: Cherry custom fields missing in the CRM; verification skipped", slug)
        return Verification(ran=False, reason=ReasonCode.FIELDS_NOT_PROVISIONED)
    status_id, balance_id = ids[ACCOUNT_STATUS], ids[ACCOUNT_BALANCE]
    wanted = {member.contact_id for member in members} | set(applied)

    result = Verification(ran=True, reason=reason, members_checked=len(members))
    seen: dict[str, tuple[object, object, frozenset[str]]] = {}
    for contact in crm.search_contacts():
        result.contacts_read += 1
        contact_id = contact.get("id")
        if contact_id not in wanted:
            continue
        values = {
            item.get("id"): item.get("value") for item in contact.get("customFields") or () if isinstance(item, dict)
        }
        tags = frozenset(str(tag).strip().lower() for tag in contact.get("tags") or ())
        seen[contact_id] = (values.get(status_id), values.get(balance_id), tags)

    to_heal: set[str] = set()
    for member in members:
        found = seen.get(member.contact_id)
        if found is None:
            result.missing_contacts += 1
            to_heal.add(member.patient_id)
            continue
        status_value, balance_value, _tags = found
        expected_status = expected_status_option(member.account_status)
        if expected_status is not None and status_value != expected_status:
            result.status_mismatches += 1
            to_heal.add(member.patient_id)
        if member.balance_available is not None:
            shown = parse_crm_number(balance_value)
            if shown is None or shown.quantize(CENT) != member.balance_available.quantize(CENT):
                result.balance_mismatches += 1
                to_heal.add(member.patient_id)
    result.mismatched_members = len(to_heal)

    lost_tags = []
    for contact_id, state in applied.items():
        found = seen.get(contact_id)
        if found is None:
            continue  # a deleted contact: removals from it count as done, additions fail and heal the patient
        lost = state.confirmed - found[2]
        if lost:
            result.tags_missing += len(lost)
            lost_tags.append(state._replace(confirmed=state.confirmed - lost))

    if not dry_run:
        result.written_hash_cleared = store.clear_written_hashes(slug, sorted(to_heal))
        store.save_contact_tags(slug, lost_tags)
        store.mark_smart_list_verified(slug)
    log.info(
        "practice %s: verified %d members against %d CRM contacts: %d disagree (%d status, %d balance, %d missing), "
        "%d product tags removed in the CRM%s",
        slug,
        result.members_checked,
        result.contacts_read,
        result.mismatched_members,
        result.status_mismatches,
        result.balance_mismatches,
        result.missing_contacts,
        result.tags_missing,
        " (dry run: nothing healed)" if dry_run else "",
    )
    return result
