"""Two Cherry patients resolving to one CRM contact are flagged `contact_conflict`, never merged."""

from __future__ import annotations

from cherry_sync.domain import normalise_phone
from cherry_sync.sync.practice_runs import backfill_practice, refresh_practice
from tests.sync.conftest import SyncEnv, edit_patient, shared_contact_points

PAGE = 25


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


def _open(env: SyncEnv) -> dict[str, tuple[str, str]]:
    return {r.source_id: (r.stage, r.reason_code) for r in env.store.open_rejections(env.slug(0))}


def _holder(env: SyncEnv, email: str) -> list[dict]:
    return [c for c in env.contacts(0) if (c.get("email") or "").lower() == email.lower()]


def test_family_sharing_an_email_is_flagged_not_merged(sync_env: SyncEnv) -> None:
    env = sync_env
    slug = env.slug(0)
    parent, child = _singles(env)[:2]
    edit_patient(env.cherry, child["id"], email=parent["email"])  # the child now uses the parent's address

    backfill_practice(env.make_ctx(0), page_size=PAGE)
    states = env.store.get_patient_states(slug, [parent["id"], child["id"]])
    owner = next(row for row in (parent, child) if states[row["id"]].crm_contact_id)
    other = child if owner is parent else parent
    assert not states[other["id"]].crm_contact_id
    assert _open(env)[other["id"]] == ("match", "contact_conflict")

    [contact] = _holder(env, parent["email"])
    assert contact["id"] == states[owner["id"]].crm_contact_id
    # The contact is the owner's alone: nothing of the other patient was written into it.
    assert (contact["firstName"], contact["lastName"]) == (owner["first_name"], owner["last_name"])
    assert contact["phone"] == normalise_phone(owner["phone"])
    assert not [c for c in env.contacts(0) if c.get("phone") == normalise_phone(other["phone"])]

    # Re-runs keep flagging it and write nothing.
    env.crm.reset_stats()
    backfill_practice(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {}
    assert _open(env)[other["id"]] == ("match", "contact_conflict")
    [rejection] = [r for r in env.store.open_rejections(slug) if r.source_id == other["id"]]
    assert rejection.attempts == 2


def test_conflicts_arising_in_the_refresh(sync_env: SyncEnv) -> None:
    env = sync_env
    slug = env.slug(0)
    owner, mover = _singles(env)[:2]
    [newcomer] = _singles(env, "EXPIRED")[:1] or _singles(env, "DECLINED")[:1]
    backfill_practice(env.make_ctx(0), page_size=PAGE)
    owner_contact = env.store.get_patient_states(slug, [owner["id"]])[owner["id"]].crm_contact_id
    before = {c["id"]: c for c in env.contacts(0)}[owner_contact]

    # A synced patient switches to the owner's e-mail; an unsynced one turns up with it.
    edit_patient(env.cherry, mover["id"], email=owner["email"])
    edit_patient(env.cherry, newcomer["id"], email=owner["email"].upper())
    summary = refresh_practice(env.make_ctx(0), page_size=PAGE)

    assert summary.patients.rejects_by_reason["contact_conflict"] == 2
    flagged = _open(env)
    assert flagged[mover["id"]][1] == "contact_conflict"
    assert flagged[newcomer["id"]] == ("match", "contact_conflict")
    after = {c["id"]: c for c in env.contacts(0)}[owner_contact]
    assert {k: after.get(k) for k in ("firstName", "lastName", "email", "phone", "customFields")} == {
        k: before.get(k) for k in ("firstName", "lastName", "email", "phone", "customFields")
    }
    assert len(_holder(env, owner["email"])) == 1
