"""Merge rules end to end: contacts staff created in the CRM before the first sync keep what is theirs."""

from __future__ import annotations

from cherry_sync.domain import normalise_phone
from cherry_sync.sync.practice_runs import backfill_practice, refresh_practice
from tests.sync.conftest import SyncEnv, edit_patient, shared_contact_points

PAGE = 25
STAFF_PHONE = "+13125550142"  # a Chicago number no sandbox patient has
STAFF_PHONE_2 = "+13125550143"


def _singles(env: SyncEnv) -> list[dict]:
    """Active patients with an e-mail and a phone of their own (no family member shares them)."""
    rows = env.cherry_patients(0)
    shared = shared_contact_points(rows)
    return [
        r
        for r in rows
        if r["account_status"] == "ACTIVE"
        and r.get("email")
        and r.get("phone")
        and r.get("date_of_birth")
        and r["email"].lower() not in shared
        and normalise_phone(r["phone"]) not in shared
    ]


def _custom(env: SyncEnv, contact: dict) -> dict[str, object]:
    keys = {f["id"]: f["fieldKey"] for f in env.crm_state(0)["customFields"]}
    return {keys[item["id"]]: item["value"] for item in contact.get("customFields", [])}


def test_staff_contacts_keep_their_data(sync_env: SyncEnv) -> None:
    env = sync_env
    singles = _singles(env)
    no_phone, placeholder_dob, by_phone = singles[:3]
    edit_patient(env.cherry, no_phone["id"], phone=None)  # Cherry has no phone for this one
    client = env.crm.client(0)
    loc = env.location_id(0)

    def staff_contact(**body) -> str:
        response = client.post("/contacts/", json={"locationId": loc, "tags": ["vip", "staff-added"], **body})
        assert response.status_code == 201, response.text
        return response.json()["contact"]["id"]

    # 1: same e-mail, staff's own phone and birth date, a nickname.
    first = staff_contact(
        firstName="Nick",
        lastName=no_phone["last_name"],
        email=no_phone["email"].upper(),
        phone=STAFF_PHONE,
        dateOfBirth="1975-06-15",
    )
    # 2: a placeholder birth date (1900-01-01) and another phone: both are Cherry's to fill / correct.
    second = staff_contact(
        firstName=placeholder_dob["first_name"],
        email=placeholder_dob["email"],
        phone=STAFF_PHONE_2,
        dateOfBirth="1900-01-01",
    )
    # 3: only the phone, in a local format: matched by phone, Cherry adds the e-mail.
    third = staff_contact(firstName="Pat", phone=by_phone["phone"])

    summary = backfill_practice(env.make_ctx(0), page_size=PAGE)
    assert summary.patients.rejected == summary.patients.rejects_by_reason.get(
        "contact_conflict", 0
    ) + summary.patients.rejects_by_reason.get("no_contact_point", 0)
    contacts = {c["id"]: c for c in env.contacts(0)}

    c1 = contacts[first]
    assert c1["dateOfBirth"].startswith("1975-06-15"), "a real CRM birth date is never overwritten"
    assert c1["phone"] == STAFF_PHONE, "the CRM phone is kept when Cherry has none"
    assert c1["firstName"] == no_phone["first_name"], "Cherry is the source of truth for names"
    assert sorted(c1["tags"]) == ["staff-added", "vip"], "tags are never touched"
    custom = _custom(env, c1)
    assert custom["contact.cherry_account_status"] == "Active"
    assert "contact.cherry_increase_eligible" in custom and "contact.cherry_practice_6month_estimate" in custom

    c2 = contacts[second]
    assert c2["dateOfBirth"].startswith(placeholder_dob["date_of_birth"]), "a placeholder date is replaced"
    assert c2["phone"] == normalise_phone(placeholder_dob["phone"]), "Cherry's phone wins when it has one"
    assert c2["lastName"] == placeholder_dob["last_name"]
    assert sorted(c2["tags"]) == ["staff-added", "vip"]

    c3 = contacts[third]
    assert c3["email"].lower() == by_phone["email"].lower()
    assert c3["firstName"] == by_phone["first_name"]
    assert sorted(c3["tags"]) == ["staff-added", "vip"]
    # No second contact was made for any of them.
    emails = [c.get("email", "").lower() for c in contacts.values()]
    for row in (no_phone, placeholder_dob, by_phone):
        assert emails.count(row["email"].lower()) == 1

    # Later edits in Cherry go through the refresh's update path: the same rules hold there.
    edit_patient(env.cherry, no_phone["id"], first_name="Nicola", date_of_birth="1980-01-01")
    refresh = refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert refresh.patients.updated == 1
    c1 = {c["id"]: c for c in env.contacts(0)}[first]
    assert c1["firstName"] == "Nicola"
    assert c1["dateOfBirth"].startswith("1975-06-15")
    assert c1["phone"] == STAFF_PHONE
    assert sorted(c1["tags"]) == ["staff-added", "vip"]


def test_refresh_matches_a_staff_contact_by_name_and_birth_date(sync_env: SyncEnv) -> None:
    """The refresh's live lookups: no e-mail or phone match, then name + date of birth (accents, case and
    punctuation ignored)."""
    env = sync_env
    rows = env.cherry_patients(0)
    shared = shared_contact_points(rows)
    [patient] = [
        r
        for r in rows
        if r["account_status"] != "ACTIVE"  # not in the active backfill: first seen by the refresh
        and r.get("date_of_birth")
        and r.get("email")
        and r["email"].lower() not in shared
        and normalise_phone(r["phone"]) not in shared
    ][:1]
    backfill_practice(env.make_ctx(0), page_size=PAGE)
    response = env.crm.client(0).post(
        "/contacts/",
        json={
            "locationId": env.location_id(0),
            "firstName": f"  {patient['first_name'].upper()} ",
            "lastName": patient["last_name"].lower(),
            "dateOfBirth": patient["date_of_birth"],
            "tags": ["walk-in"],
        },
    )
    assert response.status_code == 201, response.text
    staff_id = response.json()["contact"]["id"]
    before = len(env.contacts(0))

    edit_patient(env.cherry, patient["id"])
    summary = refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert summary.patients.updated == 1 and summary.patients.created == 0
    assert len(env.contacts(0)) == before
    contact = {c["id"]: c for c in env.contacts(0)}[staff_id]
    assert contact["email"].lower() == patient["email"].lower()
    assert contact["phone"] == normalise_phone(patient["phone"])
    assert contact["firstName"] == patient["first_name"]
    assert contact["tags"] == ["walk-in"]
    state = env.store.get_patient_states(env.slug(0), [patient["id"]])[patient["id"]]
    assert state.crm_contact_id == staff_id
