"""The smart list end to end against the sandboxes: Cherry -> backfill/refresh -> store -> smart list -> CRM tags.

After each run the CRM's product tags must equal the membership computed independently (Python's rule over the
store's patient states), whatever moved in between; partial failures must converge on a later run; an unchanged
re-run must make no CRM call; tags people added must survive.
"""

from __future__ import annotations

import csv
import json
import logging

import pytest
import requests

from cherry_sync.hooks.base import RetrySettings
from cherry_sync.smart_list.segments import SEGMENTS
from tests.smart_list.conftest import FAST_RETRY, use_window

BULK_ADD = "POST /contacts/bulk/tags/update/{type}"
PER_CONTACT_ADD = "POST /contacts/{contactId}/tags"
IN_FLIGHT = pytest.mark.parametrize("in_flight", [1, 4], ids=["one-at-a-time", "4-in-flight"])


def _cherry_statuses(env) -> dict[str, str]:
    return {s.patient_id: s.account_status for s in env.store.iter_patient_states(env.slug())}


def _pick(env, status: str | None = None, *, not_status: str | None = None, count: int = 1) -> list[str]:
    members = set(env.patients_with_contacts())
    found = [
        pid
        for pid, st in sorted(_cherry_statuses(env).items())
        if pid in members and (status is None or st == status) and (not_status is None or st != not_status)
    ]
    assert len(found) >= count, f"seed has too few {status or 'non-' + str(not_status)} members"
    return found[:count]


def test_membership_follows_patients_across_runs_and_unchanged_runs_make_no_call(smart_env):
    env = smart_env
    first = env.smart_list()
    env.assert_list_matches()
    members = len(env.expected_tags())
    assert first["members"] == members > 40
    assert first["members_added"] == members
    assert first["added"] == sum(len(t) for t in env.expected_tags().values())
    assert first["failed"] == 0 and first["tag_calls"]["per_contact"] == 0
    # Bulk: a handful of calls for every member's tags (one per distinct tag set and 100 contacts).
    assert first["tag_calls"]["bulk"] == first["planned"]["bulk_calls"] < members / 4
    assert first["verification"]["ran"] and first["verification"]["mismatched_members"] == 0
    assert {name: seg["members"] for name, seg in first["segments"].items()}["all"] == members

    before = env.crm_requests()
    again = env.smart_list()
    assert env.crm_requests() == before, "an unchanged re-run must make no CRM call (not even a read)"
    assert again["planned"]["contacts"] == 0 and again["verification"]["reason"] == "not_due"

    for round_no in range(2):
        active = _pick(env, "ACTIVE", count=6)
        others = _pick(env, not_status="ACTIVE", count=3)
        env.move(active[0], "deactivate")
        env.move(active[1], "expire")
        env.move(active[2], "spend", amount="100000.00")  # to zero: below any threshold
        env.move(active[3], "eligible")
        env.move(others[0], "approve", amount="9000.00")  # back to ACTIVE, above the threshold
        env.move(others[1], "approve", amount="1200.00")  # ACTIVE, below it
        env.move(others[2], "eligible", amount="5000.00")
        env.refresh()
        writes_before = env.crm_writes()
        result = env.smart_list()
        env.assert_list_matches()
        changed = result["planned"]["contacts"]
        assert 5 <= changed <= 7, f"round {round_no}: {changed} contacts changed"
        assert result["failed"] == 0
        # Bulk calls are shared by the moved contacts: at most one per tag touched and action, whatever the count.
        assert env.crm_writes() - writes_before == result["tag_calls"]["bulk"] == result["planned"]["bulk_calls"]
        assert result["tag_calls"]["bulk"] <= min(changed * 2, 2 * len(SEGMENTS))
        assert result["verification"]["reason"] == "membership_changed"
        assert result["verification"]["mismatched_members"] == 0

    before = env.crm_requests()
    env.smart_list()
    assert env.crm_requests() == before


@IN_FLIGHT
def test_a_rejected_bulk_batch_falls_back_to_one_call_per_contact(smart_env, in_flight):
    env = use_window(smart_env, in_flight)
    contacts = sorted(env.expected_tags())
    env.crm.poison(contacts[3], contacts[10])
    env.crm.reset_stats()

    result = env.smart_list()

    env.assert_list_matches()
    assert result["failed"] == 0
    assert result["tag_calls"]["bulk_refused"] >= 1
    calls = result["tag_calls"]["per_contact"]
    assert 2 <= calls <= 2 * 100
    # One call per contact of the refused batches: no contact twice, none left out.
    assert env.endpoint_counts()[PER_CONTACT_ADD] == calls
    _assert_store_matches_the_crm(env)
    peak = result["tag_calls"]["per_contact_peak_in_flight"]
    if in_flight == 1:
        assert peak == 1
    else:
        assert 2 <= peak <= in_flight
        assert env.crm.stats()["by_key"][env.location_id()]["max_concurrent"] >= 2, "calls were answered side by side"


def _poisoned_fallback(env) -> list[str]:
    """Poison two members: their bulk batches fall back to per-contact calls. Returns every member contact."""
    contacts = sorted(env.expected_tags())
    env.crm.poison(contacts[3], contacts[10])
    return contacts


def _assert_store_matches_the_crm(env) -> None:
    """What the store records as confirmed is what the CRM holds, contact by contact; nothing is left pending when
    every call was answered; no tag twice on a contact."""
    crm = env.crm_tags()
    recorded = env.store.contact_tags(env.slug())
    assert {cid: t.confirmed for cid, t in recorded.items() if t.confirmed} == crm
    assert all(not t.pending for t in recorded.values())
    for contact in env.crm_contacts().values():
        tags = contact.get("tags") or []
        assert len(tags) == len(set(tags))


@pytest.mark.parametrize("fault", ["write_then_500", "429", "hang"])
def test_per_contact_fallback_under_faults_loses_and_repeats_nothing(sqlite_smart_env, fault):
    in_flight = 4
    env = use_window(sqlite_smart_env, in_flight)
    env.retry = RetrySettings(**{**FAST_RETRY.__dict__, "max_attempts": 8, "read_timeout": 1.0})
    contacts = _poisoned_fallback(env)
    per_contact = [f"/contacts/{cid}/tags" for cid in contacts]  # not the bulk calls, not the searches
    if fault == "write_then_500":
        # The tags are applied, the answer is a 500: the hook sends the call again (adding a tag twice is harmless).
        env.set_faults(write_then_500_share=0.3, path_prefixes=per_contact, seed=7)
    elif fault == "429":
        # A storm on the first calls out (all of them refused at once), then one call in five refused.
        env.set_faults(
            script=["429_no_retry_after"] * 3 * in_flight,
            rate_limited_share=0.05,
            rate_limited_no_retry_after_share=0.15,
            retry_after_seconds=0,
            path_prefixes=per_contact,
            seed=7,
        )
    else:
        # One call sits past the client's 1 s read timeout and is applied late; the hook sends it again meanwhile.
        env.set_faults(script=["hang"], hang_seconds=1.3, path_prefixes=per_contact)

    result = env.smart_list()

    env.clear_faults()
    assert result["failed"] == 0 and result["tag_calls"]["bulk_refused"] >= 1
    assert sum(env.crm.fired_faults().values()) >= 1, "the faults did fire"
    env.assert_list_matches()
    _assert_store_matches_the_crm(env)
    before = env.crm_requests()
    env.smart_list()
    assert env.crm_requests() == before, "nothing left to send"


def test_an_error_that_stops_the_run_mid_fallback_records_what_the_crm_confirmed(sqlite_smart_env):
    env = use_window(sqlite_smart_env, 4)
    contacts = _poisoned_fallback(env)
    # Every call for one of the refused batch's contacts fails: past the hook's retries, the run stops.
    env.set_faults(server_error_share=1.0, path_prefixes=[f"/contacts/{contacts[3]}/tags"])

    with pytest.raises(Exception, match="server_error"):
        env.smart_list()

    env.clear_faults()
    # Calls answered before the run stopped are recorded as confirmed, exactly those; the failed contact and the
    # calls never sent keep their tags pending (sent again next run).
    crm = env.crm_tags()
    recorded = env.store.contact_tags(env.slug())
    assert {cid: t.confirmed for cid, t in recorded.items() if t.confirmed} == crm
    assert recorded[contacts[3]].pending and not recorded[contacts[3]].confirmed
    assert contacts[3] not in crm

    result = env.smart_list()
    env.assert_list_matches()
    assert result["failed"] == 0
    _assert_store_matches_the_crm(env)


def test_failures_are_retried_until_the_crm_matches(smart_env):
    env = smart_env
    # The CRM fails every attempt at the first bulk call: the hook gives up, the run stops part way.
    env.crm.set_faults(script=["500"] * 3, path_prefixes=["/contacts/bulk/tags"])
    with pytest.raises(Exception, match="server_error"):
        env.smart_list()
    env.crm.clear_faults()

    # A contact deleted in the CRM: its additions fail (per item), are retried, and heal through the sync.
    gone_patient = _pick(env, "ACTIVE")[0]
    gone_contact = env.store.get_patient_states(env.slug(), [gone_patient])[gone_patient].crm_contact_id
    response = env.crm.client().delete(f"/contacts/{gone_contact}")
    assert response.status_code == 200, response.text

    second = env.smart_list()
    assert second["failed_by_reason"] == {"crm_contact_missing": len(env.expected_tags()[gone_contact])}
    assert env.store.get_patient_states(env.slug(), [gone_patient])[gone_patient].written_hash is None
    assert _smart_list_rejections(env) == ["crm_contact_missing"]
    assert all(tags == env.expected_tags().get(cid) for cid, tags in env.crm_tags().items())

    third = env.smart_list()  # retried, still failing: the contact is still gone
    assert third["failed"] == second["failed"]

    env.backfill()  # the cleared hash makes the sync re-create the contact
    fourth = env.smart_list()
    env.assert_list_matches()
    assert fourth["failed"] == 0
    assert _smart_list_rejections(env) == []
    before = env.crm_requests()
    env.smart_list()
    assert env.crm_requests() == before


def test_tags_people_added_survive_and_removed_product_tags_come_back(smart_env):
    env = smart_env
    env.smart_list()
    client = env.crm.client()
    member, other_member = sorted(env.expected_tags())[:2]
    outsider = client.post(
        "/contacts/",
        json={"locationId": env.location_id(), "firstName": "Walk", "lastName": "In", "email": "walkin@example.test"},
    ).json()["contact"]["id"]
    for contact_id in (member, outsider):
        assert client.post(f"/contacts/{contact_id}/tags", json={"tags": ["vip", "spring-promo"]}).status_code == 201
    # A person removes a product tag from a member.
    lost = sorted(env.expected_tags()[other_member])[0]
    assert client.request("DELETE", f"/contacts/{other_member}/tags", json={"tags": [lost]}).status_code == 200

    patient = next(s for s in env.store.iter_patient_states(env.slug()) if s.crm_contact_id == member)
    env.move(patient.patient_id, "deactivate" if patient.account_status == "ACTIVE" else "approve")
    env.refresh()
    result = env.smart_list()  # membership changed: verification runs and notices the removed tag

    env.assert_list_matches()
    assert result["verification"]["tags_missing"] == 1
    contacts = env.crm_contacts()
    assert {"vip", "spring-promo"} <= set(contacts[member]["tags"])
    assert set(contacts[outsider]["tags"]) == {"vip", "spring-promo"}


def test_renamed_segment_tag_and_threshold_from_the_registry(smart_env):
    env = smart_env
    env.smart_list()
    env.configure(0, segments={"balance_threshold": "2500", "tags": {"active": "cherry-live", "all": "cherry-member"}})

    result = env.smart_list()

    env.assert_list_matches()
    all_tags = {t for c in env.crm_contacts().values() for t in c.get("tags") or ()}
    assert "cherry-active" not in all_tags and "cherry-patient" not in all_tags
    assert result["segments"]["active"]["tag"] == "cherry-live"
    # Every member gets the new "all" tag; the old one goes (it is no longer the list's tag, so not "removed").
    assert (result["members_added"], result["members_removed"]) == (result["members"], 0)
    assert result["removed"] == result["members"] + result["segments"]["active"]["members"]


def test_dry_run_reports_the_changes_without_sending_them(smart_env, caplog):
    env = smart_env
    before = env.crm_writes()
    with caplog.at_level(logging.INFO):
        planned = env.smart_list(dry_run=True)
    assert env.crm_writes() == before
    assert env.crm_tags() == {}
    assert not env.export_dir.exists()
    assert env.store.contact_tags(env.slug()) == {}

    done = env.smart_list()
    assert (done["added"], done["removed"], done["members_added"]) == (
        planned["planned"]["add"],
        planned["planned"]["remove"],
        planned["planned"]["members_added"],
    )
    assert done["tag_calls"]["bulk"] == planned["planned"]["bulk_calls"]
    _assert_no_patient_data(env, json.dumps(planned) + json.dumps(done) + caplog.text)


def test_verification_counts_column_mismatches_and_the_next_sync_heals_them(smart_env):
    env = smart_env
    env.smart_list()
    fields = {
        f["fieldKey"]: f["id"]
        for f in env.crm.location_state(env.location_id(), lists=True)["customFields"]
        if f.get("fieldKey")
    }
    status_field = fields.get("contact.cherry_account_status") or fields["cherry_account_status"]
    victim = sorted(env.expected_tags())[5]
    response = env.crm.client().put(
        f"/contacts/{victim}", json={"customFields": [{"id": status_field, "field_value": "Inactive"}]}
    )
    assert response.status_code == 200, response.text
    patient = next(s for s in env.store.iter_patient_states(env.slug()) if s.crm_contact_id == victim)
    if patient.account_status != "ACTIVE":  # make the written value wrong whatever the patient's status
        env.crm.client().put(
            f"/contacts/{victim}", json={"customFields": [{"id": status_field, "field_value": "Active"}]}
        )

    result = env.smart_list(verify="always")
    verification = result["verification"]
    assert (verification["mismatched_members"], verification["status_mismatches"]) == (1, 1)
    assert verification["written_hash_cleared"] == 1
    assert env.store.get_patient_states(env.slug(), [patient.patient_id])[patient.patient_id].written_hash is None

    env.backfill()
    healed = env.smart_list(verify="always")
    assert healed["verification"]["mismatched_members"] == 0


def test_export_is_the_current_list_with_opaque_ids_and_one_flag_per_segment(smart_env):
    env = smart_env
    result = env.smart_list()

    path = env.export_dir / f"smart_list_{env.slug()}.csv"
    assert result["export"] == {"file": path.name, "rows": result["members"]}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["patient_id", "contact_id", *SEGMENTS]
    assert len(rows) == result["members"]
    plan_tags = result["segments"]
    from_csv: dict[str, set[str]] = {}
    for row in rows:
        assert set(row[name] for name in SEGMENTS) <= {"true", "false"}
        tags = {plan_tags[name]["tag"] for name in SEGMENTS if row[name] == "true"}
        from_csv.setdefault(row["contact_id"], set()).update(tags)
    assert {cid: frozenset(tags) for cid, tags in from_csv.items()} == env.crm_tags()
    assert [p.name for p in env.export_dir.iterdir()] == [path.name]  # no temporary file left behind
    _assert_no_patient_data(env, path.read_text())


def _smart_list_rejections(env) -> list[str]:
    return [r.reason_code for r in env.store.open_rejections(env.slug()) if r.stage == "smart_list"]


def _assert_no_patient_data(env, text: str) -> None:
    """None of the practice's patients' names, e-mails or phones appear in `text`."""
    rows = requests.get(
        f"{env.cherry.base_url}/v1/patients",
        headers=env.cherry.practices[0].headers,
        params={"limit": 500},
        timeout=10,
    ).json()["data"]
    for row in rows:
        for key in ("email", "phone", "last_name"):
            value = row.get(key)
            if isinstance(value, str) and len(value) > 3:
                assert value not in text, f"patient {key} leaked"
