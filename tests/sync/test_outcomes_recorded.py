"""The outcome history: every backfill, refresh and smart-list run records one outcome per record it touched,
with the CRM's trace id, and never patient data."""

from __future__ import annotations

import re
from collections import Counter

from sqlalchemy import select

from cherry_sync.context import RunIdentity
from cherry_sync.smart_list.run import update_smart_list
from cherry_sync.store.schema_outcomes import record_outcomes
from cherry_sync.sync.practice_runs import backfill_practice, refresh_practice
from tests.sync.conftest import SyncEnv, edit_patient

PAGE = 25
OPPORTUNITY = {"pipeline": "Patient Journey", "stage": "Financing"}
# Patient-data canaries: values no id, hash, code or timestamp would contain by chance.
CANARIES = [
    {
        "first_name": f"Zyqcanary{n}",
        "last_name": f"Vexcanary{n}",
        "email": f"zyq.canary{n}@canary-mail.example",
        "phone": f"+1415867530{n}",
        "date_of_birth": f"1931-07-1{n}",
    }
    for n in range(1, 4)
]
CANARY_PATTERNS = [re.compile(p, re.I) for p in ("zyqcanary", "vexcanary", "canary-mail", "867530", "1931")]


def _ctx(env: SyncEnv, run_id: str, dag_id: str, index: int = 0, **options):
    ctx = env.make_ctx(index, **options)
    ctx.run = RunIdentity(dag_id, run_id, f"practice.{dag_id}")
    return ctx


def _rows(env: SyncEnv, run_id: str, index: int = 0):
    return list(env.store.run_outcomes(run_id, env.slug(index)))


def test_runs_record_one_outcome_per_record_without_patient_data(sync_env: SyncEnv) -> None:
    env = sync_env
    slug = env.slug(0)
    served = env.cherry_patients(0, status="ACTIVE")
    for patient, canary in zip(served[:3], CANARIES, strict=True):
        edit_patient(env.cherry, patient["id"], **canary)
    served = {p["id"]: p for p in env.cherry_patients(0, status="ACTIVE")}
    assert sum("Zyqcanary" in str(p) for p in served.values()) == 3

    # Backfill: one outcome per patient read, creates carry the CRM's trace id and the hash written.
    first = backfill_practice(_ctx(env, "run-1", "cherry_backfill", opportunity=OPPORTUNITY), page_size=PAGE)
    rows = [r for r in _rows(env, "run-1") if r.entity == "patient"]
    per_patient = Counter(r.source_id for r in rows)
    assert set(per_patient) >= set(served) and max(per_patient.values()) == 1
    ops = Counter(r.operation for r in rows if r.result in ("ok", "warning"))
    assert ops["create"] == first.patients.created > 0
    assert ops["update"] + ops["clear"] == first.patients.updated
    rejected = [r for r in rows if r.result == "rejected"]
    assert len(rejected) == first.patients.rejected
    assert all(r.reason_code for r in rejected)
    assert {r.reason_code for r in rows if r.result == "warning"} <= set(first.patients.warnings_by_reason)
    created = [r for r in rows if r.operation == "create"]
    assert all(r.crm_id and r.payload_hash and r.trace_id for r in created)
    assert {(r.dag_id, r.task_id) for r in rows} == {("cherry_backfill", "practice.cherry_backfill")}
    contact = created[0].crm_id
    assert [r.operation for r in env.store.record_history(slug, crm_id=contact)] == ["create"]

    # A re-run with no change: `unchanged` for every synced patient, and no CRM write.
    env.crm.reset_stats()
    backfill_practice(_ctx(env, "run-2", "cherry_backfill"), page_size=PAGE)
    assert env.crm_writes(0) == {}
    again = {r.source_id: r for r in _rows(env, "run-2") if r.entity == "patient"}
    assert set(again) == set(per_patient)
    for row in rows:
        if row.result in ("ok", "warning"):
            assert again[row.source_id].operation == "unchanged", row.source_id
            assert again[row.source_id].payload_hash == row.payload_hash
        else:
            assert (again[row.source_id].result, again[row.source_id].reason_code) == ("rejected", row.reason_code)
    history = env.store.record_history(slug, source_id=created[0].source_id)
    assert [(h.run_id, h.operation) for h in history] == [("run-2", "unchanged"), ("run-1", "create")]

    # Refresh: changed patients and payments (opportunities) are recorded, each with what happened.
    env.cherry.advance(minutes=120, refreshed=8, payments=4, practice_id=env.cherry.practices[0].id)
    summary = refresh_practice(_ctx(env, "run-3", "cherry_refresh", opportunity=OPPORTUNITY), page_size=PAGE)
    refreshed = _rows(env, "run-3")
    patients = [r for r in refreshed if r.entity == "patient"]
    assert Counter(r.operation for r in patients if r.result in ("ok", "warning"))["update"] >= summary.patients.updated
    assert len(patients) >= summary.patients.updated + summary.patients.created
    won = [r for r in refreshed if r.entity == "payment" and r.operation == "opportunity_create"]
    assert len(won) == summary.events.opportunities_updated > 0
    assert all(r.crm_id and r.result == "ok" for r in won)

    # Smart list: one outcome per contact and tag action, with the contact's id.
    smart = update_smart_list(_ctx(env, "run-4", "cherry_smart_list"))
    tags = _rows(env, "run-4")
    assert {r.operation for r in tags} == {"tag_add"}
    assert len(tags) == smart["planned"]["contacts"] > 0
    assert all(r.crm_id and r.result == "ok" for r in tags)

    # Dry run (another practice): what would happen, nothing written, no CRM id invented.
    dry = backfill_practice(_ctx(env, "run-5", "cherry_backfill", index=1), page_size=PAGE, dry_run=True)
    dry_rows = [r for r in _rows(env, "run-5", index=1) if r.entity == "patient"]
    assert Counter(r.result for r in dry_rows)["dry_run"] == dry.patients.created + dry.patients.updated
    assert all(r.crm_id is None and r.trace_id is None for r in dry_rows if r.operation == "create")

    assert sum("Zyqcanary" in str(c) for c in env.contacts(0)) == 3  # the canaries went through the sync

    # No patient data anywhere: every column of every row, against the canaries and every served value.
    values = set()
    for patient in served.values():
        for key in ("first_name", "last_name", "email", "phone", "date_of_birth", "balance_available"):
            if patient.get(key):
                values.add(str(patient[key]).lower())
    with env.store.engine.begin() as conn:
        stored = [dict(row._mapping) for row in conn.execute(select(record_outcomes))]
    assert len(stored) > 100
    for row in stored:
        for column, value in row.items():
            text = str(value).lower()
            assert text not in values, column
            assert not any(p.search(text) for p in CANARY_PATTERNS), column
