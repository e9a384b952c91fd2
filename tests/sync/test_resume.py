"""A backfill killed mid-way resumes at its checkpoint: nothing duplicated, no page lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cherry_sync.hooks import errors
from cherry_sync.store.models import REJECTION
from cherry_sync.sync.practice_runs import backfill_practice
from tests.sync.conftest import SyncEnv, duplicates_by_contact_point, edit_patient

REPO = Path(__file__).resolve().parents[2]
PAGE = 10


def _assert_complete_and_unduplicated(env: SyncEnv, baseline: SyncEnv) -> None:
    contacts = env.contacts(0)
    assert not duplicates_by_contact_point(contacts)
    assert len(contacts) == len(baseline.contacts(0))
    # Same final CRM state as an uninterrupted backfill of the same (identically seeded) source.
    assert env.canonical(0) == baseline.canonical(0)
    # Every active patient the store says was synced points at a contact that exists.
    contact_ids = {c["id"] for c in contacts}
    synced = [s for s in env.store.iter_patient_states(env.slug(0)) if s.crm_contact_id]
    assert synced and all(s.crm_contact_id in contact_ids for s in synced)
    active = {p["id"] for p in env.cherry_patients(0, status="ACTIVE")}
    rejected = {r.source_id for r in env.store.open_rejections(env.slug(0), kind=REJECTION)}
    assert active - rejected == {s.patient_id for s in synced} & active


def _baseline(sync_env_factory, **cherry) -> SyncEnv:
    baseline = sync_env_factory(store="sqlite", **cherry)
    backfill_practice(baseline.make_ctx(0), page_size=PAGE)
    return baseline


def test_sigkill_mid_backfill_then_resume(sync_env_factory) -> None:
    env = sync_env_factory(patients_per_practice=150)
    practice = env.practice(0)
    info, loc = env.cherry.practices[0], env.crm.locations[0]
    spec = {
        "practice": practice.model_dump(mode="json"),
        "cherry_url": env.cherry.base_url,
        "cherry_key": info.api_key,
        "crm_url": env.crm.base_url,
        "crm_token": loc.token,
        "location_id": loc.id,
        "store_url": env.store.engine.url.render_as_string(hide_password=False),
        "page_size": PAGE,
    }
    # Slow every CRM call a little so the child is surely still working when it is killed.
    env.crm.set_faults(latency_ms=25)
    child_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.sync.backfill_child", json.dumps(spec)],
        cwd=REPO,
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        checkpoint = None
        while time.monotonic() < deadline:
            checkpoint = env.store.get_checkpoint(env.slug(0), "active")
            if checkpoint is not None and checkpoint.pages_done >= 3:
                break
            assert proc.poll() is None, f"child ended early: {proc.stderr.read().decode()[-2000:]}"
            time.sleep(0.01)
        else:
            pytest.fail("the child made no progress")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert env.crm.stats()["by_key"][env.location_id(0)]["max_concurrent"] >= 2, "killed with writes in flight"
    killed = env.store.get_checkpoint(env.slug(0), "active")
    assert killed is not None and killed.completed_at is None and killed.pages_done >= 3
    total_active = len(env.cherry_patients(0, status="ACTIVE"))
    assert killed.patients_done < total_active, "killed too late to prove anything"

    env.crm.clear_faults()
    resumed = backfill_practice(env.make_ctx(0), page_size=PAGE)

    assert resumed.resumed_from_page == killed.pages_done
    assert resumed.patients.read == total_active - killed.patients_done
    assert env.store.get_checkpoint(env.slug(0), "active").completed_at is not None
    _assert_complete_and_unduplicated(env, _baseline(sync_env_factory, patients_per_practice=150))


def test_crm_outage_mid_backfill_then_resume(sync_env_factory) -> None:
    env = sync_env_factory()
    ctx = env.make_ctx(0)
    pages = ctx.cherry.iter_patient_pages

    def outage_after_two_pages(**kwargs):
        for n, page in enumerate(pages(**kwargs), start=1):
            if n == 3:
                # From the third page on the CRM refuses every contact write (after the hook's retries).
                env.crm.set_faults(server_error_share=1.0, path_prefixes=["/contacts/upsert"])
            yield page

    ctx.cherry.iter_patient_pages = outage_after_two_pages
    with pytest.raises(errors.ServerError):
        backfill_practice(ctx, page_size=PAGE)
    checkpoint = env.store.get_checkpoint(env.slug(0), "active")
    assert checkpoint.pages_done == 2 and checkpoint.completed_at is None

    env.crm.clear_faults()
    resumed = backfill_practice(env.make_ctx(0), page_size=PAGE)
    assert resumed.resumed_from_page == 2
    _assert_complete_and_unduplicated(env, _baseline(sync_env_factory))


def test_page_written_but_never_recorded_keeps_a_relative_off_the_contact(sync_env_factory) -> None:
    """A try that dies after a contact's write but before its page is recorded leaves an unowned contact in the
    CRM. The resumed page re-finds it for its patient, and a relative who shares that patient's e-mail on a later
    page must still get a contact of their own (not be merged into it)."""

    def shared_email_pair(env: SyncEnv) -> tuple[dict, dict]:
        active = env.cherry_patients(0, status="ACTIVE")
        holder = next(p for p in active[PAGE + 2 : 2 * PAGE] if p.get("email") and p.get("phone"))
        relative = next(p for p in active[3 * PAGE :] if p.get("phone") and p["phone"] != holder["phone"])
        edit_patient(env.cherry, relative["id"], email=holder["email"].upper())
        return holder, relative

    env = sync_env_factory()
    holder, _ = shared_email_pair(env)
    ctx = env.make_ctx(0, crm_extra={"max_in_flight": 1})  # one write at a time: the outage lands in the page
    upsert = ctx.crm.upsert_contact

    def outage_after_the_holder(body, *args, **kwargs):
        # Observes the call only, to time the outage: from the holder's write on, the CRM refuses every upsert,
        # so the holder's page fails after its contact reached the CRM and before the page was recorded.
        result = upsert(body, *args, **kwargs)
        if (body.get("email") or "").lower() == holder["email"].lower():
            env.crm.set_faults(server_error_share=1.0, path_prefixes=["/contacts/upsert"])
        return result

    ctx.crm.upsert_contact = outage_after_the_holder
    with pytest.raises(errors.ServerError):
        backfill_practice(ctx, page_size=PAGE)
    assert env.store.get_checkpoint(env.slug(0), "active").pages_done == 1
    # The page's confirmed writes were recorded before the error was raised; a worker killed at that moment
    # records none of them. Un-record the holder's to leave what such a kill leaves.
    assert env.store.get_patient_states(env.slug(0), [holder["id"]])[holder["id"]].crm_contact_id is not None
    env.store.mark_written(env.slug(0), [(holder["id"], None, None)])

    env.crm.clear_faults()
    backfill_practice(env.make_ctx(0), page_size=PAGE)

    baseline = sync_env_factory(store="sqlite")
    shared_email_pair(baseline)
    backfill_practice(baseline.make_ctx(0), page_size=PAGE)
    _assert_complete_and_unduplicated(env, baseline)
