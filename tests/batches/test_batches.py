"""Practice batches: how many practices each task gets, and the registry entries they carry (round trip)."""

from __future__ import annotations

import json

import pytest
import yaml

from cherry_sync.batches import (
    MAX_TASKS,
    batch_label,
    batch_of,
    batch_sizes,
    plan_batches,
    unpack_batch,
)
from cherry_sync.registry import load_registry, parse_entries


def _entries(count: int) -> list[dict]:
    entries = [
        {
            "slug": f"practice-{n:04d}",
            "display_name": f"Practice {n}",
            "timezone": "America/New_York",
            "cherry_conn_id": f"cherry_practice_{n:04d}",
            "crm_conn_id": f"crm_practice_{n:04d}",
        }
        for n in range(count)
    ]
    # Some entries with every kind of option, so the round trip covers them.
    entries[0] |= {
        "crm_auth": "oauth",
        "crm_location_id": "loc_0000",
        "options": {"segments": {"balance_threshold": "5000.00"}, "alerts": {"rejection_rate_percent": 20.0}},
        "events": {"webhooks": True},
        "timezone_pinned": True,
    }
    del entries[0]["crm_conn_id"]
    return entries


@pytest.mark.parametrize(
    ("practices", "per_task", "expected"),
    [
        (0, 10, []),
        (1, 10, [1]),
        (3, 10, [1, 1, 1]),  # a small deployment: one task per practice, as many as it has
        (8, 10, [1] * 8),
        (9, 10, [2, 1, 1, 1, 1, 1, 1, 1]),  # at least 8 tasks while there are 8 practices
        (30, 10, [4, 4, 4, 4, 4, 4, 3, 3]),
        (300, 10, [10] * 30),
        (1000, 10, [10] * 100),
        (301, 10, [10] * 22 + [9] * 9),  # 31 tasks, as even as possible
    ],
)
def test_batch_sizes(practices, per_task, expected):
    sizes = batch_sizes(practices, per_task)
    assert sizes == expected
    assert sum(sizes) == practices


def test_no_task_gets_more_than_asked_and_the_map_length_is_never_reached():
    for practices in (7, 99, 1234, 10_001, 50_000):
        for per_task in (1, 5, 10, 100):
            sizes = batch_sizes(practices, per_task)
            assert sum(sizes) == practices
            assert len(sizes) <= MAX_TASKS < 1024  # Airflow's max_map_length
            if practices <= MAX_TASKS * per_task:
                assert max(sizes) <= per_task
            assert max(sizes) - min(sizes) <= 1


def test_a_floor_of_one_task_batches_a_small_run(monkeypatch):
    assert batch_sizes(5, 5, at_least=1) == [5]
    monkeypatch.setenv("CHERRY_SYNC_MIN_TASKS_PER_RUN", "2")
    assert batch_sizes(5, 10) == [3, 2]
    monkeypatch.setenv("CHERRY_SYNC_MIN_TASKS_PER_RUN", "none")  # not a number: the default
    assert batch_sizes(5, 10) == [1] * 5


def test_labels_name_the_practice_or_the_range():
    assert batch_label(["glow-aesthetics"]) == "glow-aesthetics"
    assert batch_label(["a-1", "b-2", "c-3"]) == "a-1 .. c-3 (3)"


def test_entries_survive_the_trip_through_xcom_unchanged():
    reg = parse_entries(_entries(25))
    assert not reg.errors
    batches = plan_batches(list(reg.practices), 4, {"practice-0003": {"read_feed": False}})
    wire = json.loads(json.dumps(batches))  # what XCom stores and the mapped task reads back
    back = [work for batch in wire for work in unpack_batch(batch)]
    assert [w.practice for w in back] == list(reg.practices)  # every field, options included
    assert [w.practice.fingerprint() for w in back] == [p.fingerprint() for p in reg.practices]
    assert {w.slug: dict(w.arguments) for w in back if w.arguments} == {"practice-0003": {"read_feed": False}}
    assert [b["label"] for b in wire][:2] == [
        "practice-0000 .. practice-0003 (4)",
        "practice-0004 .. practice-0006 (3)",
    ]  # 8 tasks at least


@pytest.mark.parametrize(
    "batch",
    [None, {}, {"practices": "x"}, {"practices": [{"slug": "a"}]}, {"practices": [{"entry": {"slug": "Not A Slug"}}]}],
)
def test_a_malformed_batch_is_refused(batch):
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        unpack_batch(batch)


def test_batch_of_reads_the_registry(tmp_path):
    path = tmp_path / "practices.yml"
    path.write_text(yaml.safe_dump(_entries(3)))
    batch = batch_of("practice-0002", "practice-0001", registry_path=str(path))
    assert batch["label"] == "practice-0002 .. practice-0001 (2)"
    assert [w.practice for w in unpack_batch(batch)] == [
        load_registry(path).get("practice-0002"),
        load_registry(path).get("practice-0001"),
    ]
    with pytest.raises(KeyError):
        batch_of("practice-9999", registry_path=str(path))
