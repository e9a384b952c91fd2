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
from cherry_sync.sync.practice_runs import backfill_practice
from tests.sync.conftest import SyncEnv, duplicates_by_contact_point

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
    rejected = {r.source_id for r in env.store.open_rejections(env.slug(0))}
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
