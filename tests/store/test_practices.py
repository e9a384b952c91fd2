"""The practices mirror: registry entries upserted at run start, ids recorded, nothing ever deleted."""

from __future__ import annotations

import pytest

from tests.store.conftest import make_practice


def test_sync_practices_adds_then_reports_unchanged(store):
    configs = [make_practice("glow-aesthetics"), make_practice("lumen-medspa")]

    first = store.sync_practices(configs)
    second = store.sync_practices(configs)

    assert first.added == {"glow-aesthetics", "lumen-medspa"}
    assert second.added == frozenset() and second.changed == frozenset()
    assert second.unchanged == {"glow-aesthetics", "lumen-medspa"}
    record = store.get_practice("glow-aesthetics")
    assert record.display_name == "Glow Aesthetics"
    assert record.cherry_conn_id == "cherry_glow_aesthetics"
    assert record.registry_fingerprint == configs[0].fingerprint()
    assert record.created_at.tzinfo is not None


def test_changed_config_updates_the_mirror(store):
    store.sync_practices([make_practice("glow-aesthetics")])
    before = store.get_practice("glow-aesthetics")

    result = store.sync_practices([make_practice("glow-aesthetics", timezone="America/Chicago")])

    after = store.get_practice("glow-aesthetics")
    assert result.changed == {"glow-aesthetics"}
    assert after.timezone == "America/Chicago"
    assert after.registry_fingerprint != before.registry_fingerprint
    assert after.created_at == before.created_at


def test_disabling_keeps_the_row_and_its_data(store):
    from tests.store.conftest import patient

    store.sync_practices([make_practice("glow-aesthetics")])
    store.upsert_patient_snapshots("glow-aesthetics", [patient("p1")])

    store.sync_practices([make_practice("glow-aesthetics", enabled=False)])

    assert store.get_practice("glow-aesthetics").enabled is False
    assert [p.slug for p in store.list_practices(enabled_only=True)] == []
    assert [p.slug for p in store.list_practices()] == ["glow-aesthetics"]
    assert store.count_patients("glow-aesthetics") == 1


def test_set_practice_ids_keeps_what_is_not_given(store):
    store.sync_practices([make_practice("glow-aesthetics")])

    store.set_practice_ids("glow-aesthetics", cherry_practice_id="CH-100")
    store.set_practice_ids("glow-aesthetics", crm_location_id="loc_abc")

    record = store.get_practice("glow-aesthetics")
    assert (record.cherry_practice_id, record.crm_location_id) == ("CH-100", "loc_abc")


def test_set_practice_ids_for_unknown_practice_fails(store):
    with pytest.raises(LookupError):
        store.set_practice_ids("nope", crm_location_id="loc")


def test_rows_need_a_registered_practice(store):
    from sqlalchemy.exc import IntegrityError

    from tests.store.conftest import patient

    with pytest.raises(IntegrityError):
        store.upsert_patient_snapshots("unregistered", [patient("p1")])
