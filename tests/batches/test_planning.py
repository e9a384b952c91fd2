"""The run planners: the registry read once and the practices chosen, for the forms and for the smart list's
Asset events (only the practices whose contacts changed)."""

from __future__ import annotations

import json

import pytest
import yaml

from cherry_sync.batches import unpack_batch
from cherry_sync.store import RunCounts, engine_from_url, store_from_engine
from cherry_sync.tasks import changed_practice_batches, practice_batches, practices_with_contact_changes

SLUGS = ("glow", "lumen", "harbor", "paused")


@pytest.fixture
def store(tmp_path, monkeypatch):
    registry = tmp_path / "practices.yml"
    registry.write_text(
        yaml.safe_dump(
            [
                {
                    "slug": slug,
                    "display_name": slug.title(),
                    "timezone": "America/New_York",
                    "cherry_conn_id": f"cherry_{slug}",
                    "crm_conn_id": f"crm_{slug}",
                    "enabled": slug != "paused",
                }
                for slug in SLUGS
            ]
        )
    )
    monkeypatch.setenv("CHERRY_SYNC_REGISTRY", str(registry))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CHERRY_SYNC_STORE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "store.db")})
    )
    return store_from_engine(engine_from_url(f"sqlite:///{tmp_path / 'store.db'}"))


def _slugs(batches) -> list[str]:
    return [work.slug for batch in batches for work in unpack_batch(batch)]


def test_the_form_s_choice_or_every_enabled_practice(store):
    assert _slugs(practice_batches([])) == ["glow", "lumen", "harbor"]
    assert _slugs(practice_batches(["harbor", "paused", "nope"])) == ["harbor"]
    assert [b["label"] for b in practice_batches(None)] == ["glow", "lumen", "harbor"]  # small: one task each


def test_the_smart_list_runs_for_the_practices_the_events_name(store):
    events = [{"practices": ["lumen"]}, {"practices": ["harbor", "paused", "gone"]}]
    assert _slugs(changed_practice_batches(events, [])) == ["lumen", "harbor"]  # registry order, enabled only


def test_without_events_or_with_an_event_that_names_none_every_chosen_practice(store):
    assert _slugs(changed_practice_batches([], [])) == ["glow", "lumen", "harbor"]  # manual or daily run
    assert _slugs(changed_practice_batches([], ["glow"])) == ["glow"]
    assert _slugs(changed_practice_batches([{"practices": ["lumen"]}, None], [])) == ["glow", "lumen", "harbor"]


def test_practices_with_contact_changes_come_from_the_run_s_ledger(store):
    for slug, counts, status in (
        ("glow", RunCounts(read=5, created=2), "success"),
        ("lumen", RunCounts(read=5, unchanged=5), "success"),  # nothing written
        ("harbor", RunCounts(), "failed"),  # failed: may have written some before failing
    ):
        ledger_id = store.start_run("run-1", "cherry_refresh", slug, "apply_events")
        store.finish_run(ledger_id, status, counts)
    other = store.start_run("run-2", "cherry_refresh", "lumen", "apply_events")
    store.finish_run(other, "success", RunCounts(updated=1))

    assert practices_with_contact_changes("run-1", "cherry_refresh") == ["glow", "harbor"]
    assert practices_with_contact_changes("run-2", "cherry_refresh") == ["lumen"]
    assert practices_with_contact_changes("run-3", "cherry_refresh") == []
