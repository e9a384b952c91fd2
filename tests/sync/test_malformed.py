"""Malformed Cherry records: good records sync, bad ones are rejected with their reason, repairs heal."""

from __future__ import annotations

from collections import Counter

from cherry_sync.store.models import REJECTION
from cherry_sync.sync.practice_runs import backfill_practice, refresh_practice
from tests.sync.conftest import SyncEnv

PAGE = 25
# kind -> (outcome, reason code). Contact-detail problems degrade the record (docs/field-mapping.md §1).
EXPECTED = {
    "missing_id": ("reject", "missing_id"),
    "bad_email": ("warning", "invalid_email"),  # the patient has a phone: synced without the e-mail
    "bad_phone": ("warning", "invalid_phone"),  # the patient has an e-mail: synced without the phone
    "non_numeric_money": ("reject", "invalid_money"),
    "impossible_date": ("warning", "invalid_date"),  # a date of birth that does not exist is dropped
    "unknown_status": ("reject", "unknown_status"),
    "oversize_text": ("reject", "oversize_text"),
}


def _pick_targets(env: SyncEnv) -> dict[str, dict]:
    """One distinct active patient per corruption kind, plus a phone-only patient for `bad_phone` →
    no contact point at all (rejected)."""
    everyone = env.cherry_patients(0)
    shared = Counter(_e164(r["phone"]) for r in everyone if r.get("phone"))
    shared.update(r["email"].lower() for r in everyone if r.get("email"))
    # Only patients whose e-mail and phone are theirs alone (the seed has families sharing them).
    rows = [
        r
        for r in everyone
        if r["account_status"] == "ACTIVE"
        and shared[_e164(r["phone"])] == 1
        and (not r.get("email") or shared[r["email"].lower()] == 1)
    ]
    with_both = [r for r in rows if r.get("email") and r.get("phone")]
    phone_only = [r for r in rows if r.get("phone") and not r.get("email")]
    assert len(with_both) >= len(EXPECTED) and phone_only
    targets = dict(zip(EXPECTED, with_both, strict=False))
    targets["no_contact_point"] = phone_only[0]
    return targets


def test_malformed_records_are_rejected_or_degraded_and_repairs_heal(sync_env: SyncEnv) -> None:
    env = sync_env
    slug = env.slug(0)
    targets = _pick_targets(env)
    for kind, row in targets.items():
        env.cherry.corrupt(row["id"], "bad_phone" if kind == "no_contact_point" else kind)

    summary = backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)

    open_by_id = {r.source_id: r for r in env.store.open_rejections(slug)}
    for kind, row in targets.items():
        outcome, reason = EXPECTED.get(kind, ("reject", "no_contact_point"))
        if kind == "missing_id":
            # The record cannot name itself: it is filed under an opaque id derived from its content.
            opaque = [r for sid, r in open_by_id.items() if sid.startswith("no-id-")]
            assert [r.reason_code for r in opaque] == ["missing_id"]
        elif outcome == "reject":
            assert open_by_id[row["id"]].reason_code == reason, kind
        else:
            assert row["id"] not in open_by_id, (kind, open_by_id[row["id"]].reason_code, open_by_id[row["id"]].message)
            assert summary.patients.warnings_by_reason[reason] >= 1, kind
    # Rejection messages name fields and rules, never values from the record.
    for rejection in open_by_id.values():
        for row in targets.values():
            for value in (row["first_name"], row["last_name"], row["email"], row["phone"]):
                assert not value or value not in rejection.message

    # Degraded records were synced without the bad detail; everything else synced normally.
    contacts = env.contacts(0)
    by_email = {c.get("email", "").lower(): c for c in contacts if c.get("email")}
    by_phone = {c.get("phone"): c for c in contacts if c.get("phone")}
    assert by_phone[_e164(targets["bad_email"]["phone"])].get("email") is None
    assert by_email[targets["bad_phone"]["email"].lower()].get("phone") is None
    assert "dateOfBirth" not in by_email[targets["impossible_date"]["email"].lower()]
    for kind in ("non_numeric_money", "unknown_status", "oversize_text"):
        assert targets[kind]["email"].lower() not in by_email, kind
    expected_rejects = Counter(
        {"missing_id": 1, "invalid_money": 1, "unknown_status": 1, "oversize_text": 1, "no_contact_point": 1}
    )
    natural = summary.patients.rejects_by_reason - expected_rejects  # e.g. family members sharing a phone
    assert set(natural) <= {"contact_conflict", "no_contact_point"}

    # Repair every record at the source; the refresh picks the repairs up from the event feed.
    for row in targets.values():
        env.cherry.repair(row["id"])
    refresh = refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert refresh.patients.rejected == 0

    still_open = {r.source_id: r.reason_code for r in env.store.open_rejections(slug)}
    for kind, row in targets.items():
        assert row["id"] not in still_open, kind
        state = env.store.get_patient_states(slug, [row["id"]])[row["id"]]
        assert state.crm_contact_id, kind
    contacts = {c["id"]: c for c in env.contacts(0)}
    for kind, row in targets.items():
        contact = contacts[env.store.get_patient_states(slug, [row["id"]])[row["id"]].crm_contact_id]
        assert contact["lastName"] == row["last_name"], kind
        assert contact["phone"] == _e164(row["phone"]), kind
        if row.get("email"):
            assert contact["email"].lower() == row["email"].lower(), kind
        assert contact["dateOfBirth"].startswith(row["date_of_birth"]), kind
    # A record without an id can never be matched to its repair: its rejection stays open (documented).
    assert [code for sid, code in still_open.items() if sid.startswith("no-id-")] == ["missing_id"]


def test_seeded_malformed_share_run_succeeds(sync_env_factory) -> None:
    env = sync_env_factory(malformed_share=0.3)
    slug = env.slug(0)
    summary = backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    malformed = {m["id"]: m["kind"] for m in env.cherry.admin("GET", "/malformed")}
    served = env.cherry_patients(0)
    assert any(True for _ in malformed)

    rejected = {r.source_id: r.reason_code for r in env.store.open_rejections(slug, kind=REJECTION)}
    synced = {s.patient_id for s in env.store.iter_patient_states(slug) if s.crm_contact_id}
    for row in served:
        patient_id = row.get("id")
        if patient_id is None:
            continue
        kind = malformed.get(patient_id)
        outcome, reason = EXPECTED.get(kind, ("ok", None)) if kind else ("ok", None)
        if outcome == "reject":
            assert rejected.get(patient_id) == reason, (kind, rejected.get(patient_id))
        else:
            # Synced, or rejected for a reason that has nothing to do with malformed data.
            assert patient_id in synced or rejected.get(patient_id) in ("contact_conflict", "no_contact_point")
    assert summary.patients.read == len(served)
    assert summary.patients.rejected == len(rejected)


def _e164(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit())[-10:]
    return f"+1{digits}"
