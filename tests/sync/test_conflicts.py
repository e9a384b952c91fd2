"""Family members sharing an e-mail or phone: each gets a contact of their own, the shared point stays with the
contact that holds it and is a `shared_contact_point` warning on the other; a patient with nothing of their own is
flagged `contact_conflict`. Never merged into a relative's contact, never duplicated."""

from __future__ import annotations

from cherry_sync.domain import normalise_phone
from cherry_sync.store.models import REJECTION, WARNING
from cherry_sync.sync.practice_runs import backfill_practice, refresh_practice
from tests.sync.conftest import SyncEnv, duplicates_by_contact_point, edit_patient, shared_contact_points

PAGE = 25
SHARED = "shared_contact_point"


def _singles(env: SyncEnv, status: str = "ACTIVE") -> list[dict]:
    rows = env.cherry_patients(0)
    shared = shared_contact_points(rows)
    return [
        r
        for r in rows
        if r["account_status"] == status
        and r.get("email")
        and r.get("phone")
        and r["email"].lower() not in shared
        and normalise_phone(r["phone"]) not in shared
    ]


def _open(env: SyncEnv) -> dict[str, tuple[str, str, str]]:
    return {r.source_id: (r.stage, r.reason_code, r.kind) for r in env.store.open_rejections(env.slug(0))}


def _holder(env: SyncEnv, email: str) -> list[dict]:
    return [c for c in env.contacts(0) if (c.get("email") or "").lower() == email.lower()]


def _contact_of(env: SyncEnv, patient_id: str) -> dict | None:
    contact_id = env.store.get_patient_states(env.slug(0), [patient_id])[patient_id].crm_contact_id
    return {c["id"]: c for c in env.contacts(0)}.get(contact_id) if contact_id else None


def _assert_own(contact: dict, row: dict) -> None:
    """The contact carries this patient's names (nothing of a relative was merged into it)."""
    assert (contact["firstName"], contact["lastName"]) == (row["first_name"], row["last_name"])


def test_family_sharing_an_email_each_get_a_contact(sync_env: SyncEnv) -> None:
    env = sync_env
    slug = env.slug(0)
    parent, child = _singles(env)[:2]
    edit_patient(env.cherry, child["id"], email=parent["email"])  # the child now uses the parent's address

    summary = backfill_practice(env.make_ctx(0), page_size=PAGE)

    holder_contact = _holder(env, parent["email"])
    assert len(holder_contact) == 1, "the shared e-mail is on one contact only"
    owner = next(row for row in (parent, child) if _contact_of(env, row["id"])["id"] == holder_contact[0]["id"])
    other = child if owner is parent else parent
    own, theirs = _contact_of(env, owner["id"]), _contact_of(env, other["id"])
    assert own["id"] != theirs["id"]
    _assert_own(own, owner)
    _assert_own(theirs, other)
    assert theirs["phone"] == normalise_phone(other["phone"]), "the patient's own phone is on their contact"
    assert not theirs.get("email"), "the shared e-mail is left off"
    assert own["phone"] == normalise_phone(owner["phone"])
    assert "contact.cherry_account_status" in _custom_keys(env, theirs)
    assert duplicates_by_contact_point(env.contacts(0)) == {}

    # A warning, not a rejection: visible in the store and in the run summary.
    assert _open(env)[other["id"]] == ("match", SHARED, WARNING)
    assert owner["id"] not in _open(env)
    # (The sandbox seeds other families too: the counts include them.)
    assert summary.patients.warnings_by_reason[SHARED] == env.store.warning_counts(slug)[SHARED] >= 1
    assert SHARED not in summary.patients.rejects_by_reason
    [warning] = [r for r in env.store.open_rejections(slug, kind=WARNING) if r.source_id == other["id"]]
    assert warning.message.startswith("email: left off")
    assert parent["email"].lower() not in warning.message.lower()

    # Re-runs keep warning and write nothing.
    env.crm.reset_stats()
    again = backfill_practice(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {}
    assert again.patients.warnings_by_reason == summary.patients.warnings_by_reason
    [warning] = [r for r in env.store.open_rejections(slug) if r.source_id == other["id"]]
    assert (warning.kind, warning.attempts) == (WARNING, 2)


def test_a_patient_with_nothing_of_their_own_stays_a_conflict(sync_env: SyncEnv) -> None:
    env = sync_env
    parent, child = _singles(env)[:2]
    edit_patient(env.cherry, child["id"], email=parent["email"], phone=None)  # only the parent's address

    summary = backfill_practice(env.make_ctx(0), page_size=PAGE)

    states = env.store.get_patient_states(env.slug(0), [parent["id"], child["id"]])
    synced = [row for row in (parent, child) if states[row["id"]].crm_contact_id]
    assert len(synced) == 1
    [flagged] = [row for row in (parent, child) if row is not synced[0]]
    assert _open(env)[flagged["id"]] == ("match", "contact_conflict", REJECTION)
    assert summary.patients.rejects_by_reason["contact_conflict"] >= 1
    [contact] = _holder(env, parent["email"])
    _assert_own(contact, synced[0])
    assert duplicates_by_contact_point(env.contacts(0)) == {}


def test_conflicts_arising_in_the_refresh(sync_env: SyncEnv) -> None:
    env = sync_env
    slug = env.slug(0)
    owner, mover = _singles(env)[:2]
    [newcomer] = _singles(env, "EXPIRED")[:1] or _singles(env, "DECLINED")[:1]
    backfill_practice(env.make_ctx(0), page_size=PAGE)
    owner_contact = env.store.get_patient_states(slug, [owner["id"]])[owner["id"]].crm_contact_id
    mover_contact = env.store.get_patient_states(slug, [mover["id"]])[mover["id"]].crm_contact_id
    before = {c["id"]: c for c in env.contacts(0)}[owner_contact]
    count_before = len(env.contacts(0))

    # A synced patient switches to the owner's e-mail; an unsynced one turns up with it.
    edit_patient(env.cherry, mover["id"], email=owner["email"])
    edit_patient(env.cherry, newcomer["id"], email=owner["email"].upper())
    summary = refresh_practice(env.make_ctx(0), page_size=PAGE)

    assert summary.patients.warnings_by_reason[SHARED] == 2
    assert summary.patients.rejected == 0
    flagged = _open(env)
    assert flagged[mover["id"]] == ("match", SHARED, WARNING)
    assert flagged[newcomer["id"]] == ("match", SHARED, WARNING)
    after = {c["id"]: c for c in env.contacts(0)}[owner_contact]
    assert {k: after.get(k) for k in ("firstName", "lastName", "email", "phone", "customFields")} == {
        k: before.get(k) for k in ("firstName", "lastName", "email", "phone", "customFields")
    }
    assert len(_holder(env, owner["email"])) == 1
    # The mover keeps its contact (the stored id); the newcomer gets one of its own, on its phone.
    assert env.store.get_patient_states(slug, [mover["id"]])[mover["id"]].crm_contact_id == mover_contact
    newcomer_contact = _contact_of(env, newcomer["id"])
    _assert_own(newcomer_contact, newcomer)
    assert newcomer_contact["phone"] == normalise_phone(newcomer["phone"]) and not newcomer_contact.get("email")
    assert len(env.contacts(0)) == count_before + 1
    assert duplicates_by_contact_point(env.contacts(0)) == {}

    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {}


def _shared_then_freed(env: SyncEnv) -> tuple[dict, dict]:
    """Parent and child share the parent's phone (the child's contact is written without it); returns them."""
    parent, child = _singles(env)[:2]
    edit_patient(env.cherry, child["id"], phone=parent["phone"])
    backfill_practice(env.make_ctx(0), page_size=PAGE)
    holder = next(c for c in env.contacts(0) if c.get("phone") == normalise_phone(parent["phone"]))
    if _contact_of(env, child["id"])["id"] == holder["id"]:
        parent, child = child, parent  # whoever was synced first holds the phone
    assert _open(env)[child["id"]] == ("match", SHARED, WARNING)
    assert not _contact_of(env, child["id"]).get("phone")
    return parent, child


def _assert_freed_point_added(env: SyncEnv, parent: dict, child: dict, new_phone: str) -> None:
    child_contact, parent_contact = _contact_of(env, child["id"]), _contact_of(env, parent["id"])
    assert parent_contact["phone"] == normalise_phone(new_phone)
    assert child_contact["phone"] == normalise_phone(parent["phone"]), "the freed phone is added to the child"
    _assert_own(child_contact, child)
    _assert_own(parent_contact, parent)
    assert child["id"] not in _open(env), "the warning is resolved"
    assert duplicates_by_contact_point(env.contacts(0)) == {}


def test_a_freed_point_is_added_by_the_refresh(sync_env: SyncEnv) -> None:
    env = sync_env
    parent, child = _shared_then_freed(env)
    count = len(env.contacts(0))

    new_phone = "(415) 555-0199"
    edit_patient(env.cherry, parent["id"], phone=new_phone)  # the relative gets a number of their own
    refresh_practice(env.make_ctx(0), page_size=PAGE)

    _assert_freed_point_added(env, parent, child, new_phone)
    assert len(env.contacts(0)) == count
    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    backfill_practice(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {}


def test_a_freed_point_is_added_by_the_backfill(sync_env: SyncEnv) -> None:
    env = sync_env
    parent, child = _shared_then_freed(env)
    count = len(env.contacts(0))

    new_phone = "(415) 555-0198"
    edit_patient(env.cherry, parent["id"], phone=new_phone)
    backfill_practice(env.make_ctx(0), page_size=PAGE)

    _assert_freed_point_added(env, parent, child, new_phone)
    assert len(env.contacts(0)) == count
    env.crm.reset_stats()
    backfill_practice(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {}


def _custom_keys(env: SyncEnv, contact: dict) -> set[str]:
    keys = {f["id"]: f.get("fieldKey") for f in env.crm_state(0).get("customFields", [])}
    return {keys.get(item["id"]) for item in contact.get("customFields", [])}
