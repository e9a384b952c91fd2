"""One agreed time zone per practice, through the real sync into the CRM sandbox.

The registry's zone, Cherry's practice zone and the CRM location's zone are compared at the start of every practice
run (one `GET /v1/practice`, one `GET /locations/{id}`). A disagreement fails that practice alone, before any write,
unless the registry pins its zone; dates are written as local calendar dates in the agreed zone, across DST changes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cherry_sync.domain import normalise_phone
from cherry_sync.domain.contact_points import email_match_key
from cherry_sync.sync.practice_runs import backfill_practice, refresh_practice
from cherry_sync.sync.zones import PracticeZones, TimezoneMismatch, compare_zones, enforce
from tests.sync.conftest import edit_patient, shared_contact_points

COMPLETED_DATE = "contact.cherry_application_completed_date"
SPRING, AUTUMN = "2026-03-08T06:30:00Z", "2026-11-01T05:30:00Z"  # the nights US clocks change in 2026
LOCAL_DATE = {  # what a person in the zone calls that day
    "America/Los_Angeles": {SPRING: "2026-03-07", AUTUMN: "2026-10-31"},
    "America/New_York": {SPRING: "2026-03-08", AUTUMN: "2026-11-01"},
}
AFTER_BOTH = {"now": "2026-12-01T00:00:00Z"}  # the sandbox clock after both dates (they are in the past)


# -- the comparison (plain values) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cherry", "crm", "fix"),
    [
        ("America/Chicago", "America/Chicago", "set the registry's timezone to America/Chicago"),
        ("America/Chicago", "America/New_York", "set the practice's time zone in Cherry to America/New_York"),
        ("America/New_York", "America/Denver", "set the CRM location's time zone (Settings > Business Profile) to"),
        ("America/Chicago", "America/Denver", "make all three the same zone"),
        (None, "America/New_York", "set the practice's time zone in Cherry to America/New_York"),
    ],
)
def test_a_disagreement_is_one_sentence_naming_the_three_zones_and_the_fix(cherry, crm, fix):
    zones = compare_zones("glow", "America/New_York", cherry, crm)

    with pytest.raises(TimezoneMismatch) as failed:
        enforce(zones)

    message = str(failed.value)
    assert failed.value.reason_code == "timezone_mismatch"
    assert message.startswith("time zones disagree: the registry says America/New_York, Cherry keeps the practice in ")
    assert (cherry or "no time zone") in message and crm in message and fix in message
    assert message.endswith("or pin the registry's zone with `timezone_pinned: true`") and "\n" not in message


def test_agreeing_or_pinned_zones_give_the_registry_zone(caplog):
    assert enforce(compare_zones("glow", "America/Denver", "America/Denver", "America/Denver")) == "America/Denver"
    pinned = PracticeZones("glow", "America/Denver", "America/Chicago", "America/New_York", pinned=True)
    assert enforce(pinned) == "America/Denver"
    assert "time zones disagree" in caplog.text and "timezone_pinned" in caplog.text


# -- practice runs -------------------------------------------------------------------------------------------------


def _completed_dates(env, index: int, patients: dict[str, str]) -> dict[str, str | None]:
    """Cherry timestamp -> the application-completed date the CRM contact of the patient edited to it shows."""
    by_email = {c["email"]: c for c in env.canonical(index)["contacts"] if c["email"]}
    return {stamp: _day(by_email[email]["custom"].get(COMPLETED_DATE)) for stamp, email in patients.items()}


def _day(value) -> str | None:
    """HighLevel keeps a DATE field as epoch milliseconds at midnight UTC of the day."""
    return None if value is None else datetime.fromtimestamp(int(value) / 1000, UTC).date().isoformat()


def _two_patients_completed_at_dst_changes(env, index: int) -> dict[str, str]:
    """Two active Cherry patients of the practice, edited to complete their applications at SPRING and AUTUMN."""
    patients = env.cherry_patients(index, status="ACTIVE")
    shared = shared_contact_points(patients)  # family members: which one owns the contact is a matching question
    chosen = [
        p
        for p in patients
        if p.get("email") and not {email_match_key(p["email"]), normalise_phone(p.get("phone") or "")} & shared
    ][:2]
    for patient, stamp in zip(chosen, (SPRING, AUTUMN), strict=True):
        edit_patient(env.cherry, patient["id"], application_completed_at=stamp)
    return {stamp: patient["email"].lower() for patient, stamp in zip(chosen, (SPRING, AUTUMN), strict=True)}


def test_dates_across_dst_changes_land_on_the_local_day_of_the_agreed_zone(sync_env_factory):
    env = sync_env_factory(**AFTER_BOTH)
    assert [env.cherry.practices[i].timezone for i in (0, 1)] == ["America/Los_Angeles", "America/New_York"]
    for index in (0, 1):
        patients = _two_patients_completed_at_dst_changes(env, index)
        ctx = env.make_ctx(index)

        summary = backfill_practice(ctx)

        zone = ctx.practice.timezone
        assert summary.patients.created > 0
        assert _completed_dates(env, index, patients) == LOCAL_DATE[zone], zone
        # The check cost one look at each API.
        assert ctx.cherry.calls["GET /v1/practice"] == 1 and ctx.crm.calls["GET /locations/{id}"] == 1


def test_a_practice_whose_zones_disagree_fails_alone_before_any_write(sync_env):
    env = sync_env
    env.crm.set_location_timezone(env.location_id(1), "America/Denver")  # someone changed the CRM location's zone
    healthy, broken = env.make_ctx(0), env.make_ctx(1)
    env.crm.reset_stats()

    assert backfill_practice(healthy).patients.created > 0
    for run in (backfill_practice, refresh_practice):
        with pytest.raises(TimezoneMismatch) as failed:
            run(broken)
        assert str(failed.value) == (
            "time zones disagree: the registry says America/New_York, Cherry keeps the practice in America/New_York "
            "and the CRM location is in America/Denver; set the CRM location's time zone (Settings > Business "
            "Profile) to America/New_York, or pin the registry's zone with `timezone_pinned: true`"
        )

    assert env.crm_writes(1) == {} and env.contacts(1) == []
    assert dict(broken.cherry.calls) == {"GET /v1/practice": 2} and dict(broken.crm.calls) == {"GET /locations/{id}": 2}
    assert env.store.get_cursor(env.slug(1), "events") is None
    assert env.contacts(0), "the healthy practice synced"


def test_a_dry_run_with_disagreeing_zones_fails_the_same_way_and_writes_nothing(sync_env):
    env = sync_env
    env.crm.set_location_timezone(env.location_id(0), "America/Denver")
    env.crm.reset_stats()

    with pytest.raises(TimezoneMismatch):
        backfill_practice(env.make_ctx(0), dry_run=True)

    assert env.crm_writes(0) == {}


def test_a_pinned_registry_zone_syncs_in_that_zone_despite_cherry_and_the_crm(sync_env_factory, caplog):
    env = sync_env_factory(**AFTER_BOTH)
    patients = _two_patients_completed_at_dst_changes(env, 0)  # Cherry and the CRM location: Los Angeles
    env.practice(0)
    env.practices[0] = env.practices[0].model_copy(update={"timezone": "America/New_York", "timezone_pinned": True})
    ctx = env.make_ctx(0)

    backfill_practice(ctx)

    assert _completed_dates(env, 0, patients) == LOCAL_DATE["America/New_York"]
    assert "the registry says America/New_York" in caplog.text and "America/Los_Angeles" in caplog.text
