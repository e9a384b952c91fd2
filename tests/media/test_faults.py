"""Faults during the import leave no duplicate file or folder in the CRM (its sandbox state is the witness), and a
task killed mid-import re-uploads nothing the CRM had confirmed.

The fault tests run twice: one upload at a time, and four in flight with 50 ms of CRM latency (`use_window`), so
a fault hits one upload while others are out: nothing may be lost, nothing duplicated.
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from cherry_sync.hooks.crm import AesthetixCrmHook
from tests.fixtures.sandbox_env import use_window
from tests.media.conftest import SLUG, MediaEnv, add_cherry_asset, assert_no_duplicates, png_bytes

BIG = 200_000  # above ~64 KB the sandbox keeps a hung upload's body and applies it after the hang
IN_FLIGHT = pytest.mark.parametrize("in_flight", [1, 4], ids=["one-at-a-time", "4-in-flight"])
UPLOAD = "POST /medias/upload-file"


def _files_named(env: MediaEnv, name: str) -> list[dict]:
    return [f for f in env.files() if f["name"] == name]


def _wait_for(predicate, timeout: float = 15.0) -> None:
    """Wait for the sandbox to reach a state (not a timed assertion: the deadline only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the sandbox never reached the expected state"
        time.sleep(0.1)


def _assert_ledger_matches_the_crm(env: MediaEnv) -> None:
    """Every ledger row is confirmed and points at a file holding exactly those bytes; every file is in the ledger."""
    ledger = env.store.media_uploads(SLUG, env.location_id())
    assert all(u.confirmed for u in ledger.values())
    for sha, upload in ledger.items():
        assert hashlib.sha256(env.crm.media_bytes(upload.crm_file_id)).hexdigest() == sha
    assert {u.crm_file_id for u in ledger.values()} == {f["id"] for f in env.files()}


@IN_FLIGHT
def test_write_then_500_on_every_kind_of_write_leaves_one_of_each(sqlite_media_env: MediaEnv, in_flight: int):
    env = use_window(sqlite_media_env, in_flight)
    # The CRM applies the write, then answers 500: two folder creates and a few uploads, spread over the run.
    env.set_faults(
        write_then_500_share=0.1, script=["write_then_500", "write_then_500"], path_prefixes=["/medias/"], seed=3
    )

    summary = env.run()

    env.clear_faults()
    assert summary.uploaded == 120
    assert summary.peak_in_flight <= in_flight
    assert_no_duplicates(env)
    assert len(env.files()) == 120 and len(env.folders()) == 6
    assert env.crm.stats()["status_codes"].get("500", 0) >= 3, "the faults did fire"
    _assert_ledger_matches_the_crm(env)
    env.crm.reset_stats()
    assert env.run().uploaded == 0 and env.crm_writes() == {}


@IN_FLIGHT
def test_429_storms_delay_uploads_and_lose_or_repeat_none(sqlite_media_env: MediaEnv, in_flight: int):
    env = use_window(sqlite_media_env, in_flight)
    # A storm at the start (every upload in flight refused at once), then one upload in five refused, with and
    # without Retry-After (0 s: the test stays fast; the hook still waits it out, plus jitter).
    env.set_faults(
        script=["429_no_retry_after"] * 4 * in_flight,
        rate_limited_share=0.1,
        rate_limited_no_retry_after_share=0.1,
        retry_after_seconds=0,
        path_prefixes=["/medias/upload-file"],
        seed=5,
    )

    summary = env.run()

    env.clear_faults()
    assert summary.uploaded == 120 and summary.rejected == 0
    assert env.crm.stats()["status_codes"].get("429", 0) >= 20, "the storm did blow"
    # A 429 is a refusal before any work: each asset's bytes went in once, under one name.
    assert len(env.files()) == 120 and len(env.folders()) == 6
    assert_no_duplicates(env)
    _assert_ledger_matches_the_crm(env)


@IN_FLIGHT
def test_upload_hanging_past_the_read_timeout_is_found_not_repeated(sqlite_media_env: MediaEnv, in_flight: int):
    env = use_window(sqlite_media_env, in_flight)
    env.run()
    added = [add_cherry_asset(env, "Promotions", f"Big Poster {i}.png", png_bytes(BIG, seed=10 + i)) for i in range(6)]
    names = {a["sha256"]: f"Big Poster {i}-{a['sha256'][:8]}.png" for i, a in enumerate(added)}
    # The CRM sits on the first upload past the client's 1 s read timeout, then applies it; the hook looks for the
    # file for up to one more read timeout before it would send it again. The other uploads go on meanwhile.
    env.set_faults(script=["hang"], hang_seconds=1.4, path_prefixes=["/medias/upload-file"])
    env.crm.reset_stats()

    summary = env.run()

    # Every upload the hook sent has been answered (a hung one is counted when it completes) before looking.
    sent = summary.api_calls[f"crm {UPLOAD}"]
    _wait_for(lambda: env.crm_writes()[UPLOAD] == sent)
    assert summary.uploaded == 6
    assert env.crm_writes() == {UPLOAD: 6}, "the hung upload was found after the hang, never sent twice"
    ledger = env.store.media_uploads(SLUG, env.location_id())
    for sha, name in names.items():
        [file] = _files_named(env, name)
        assert ledger[sha].crm_file_id == file["id"]
    assert_no_duplicates(env)


@IN_FLIGHT
def test_upload_landing_after_the_repeat_is_swept_on_the_next_run(sqlite_media_env: MediaEnv, in_flight: int):
    env = use_window(sqlite_media_env, in_flight)
    env.run()
    contents = [png_bytes(BIG, seed=20 + i) for i in range(6)]
    added = [add_cherry_asset(env, "Social", f"Late Lander {i}.png", c) for i, c in enumerate(contents)]
    names = [f"Late Lander {i}-{a['sha256'][:8]}.png" for i, a in enumerate(added)]
    # Hung for longer than the client waits (1 s) plus the settle window (1 s): the repeat lands first, then the
    # hung request too -> two files of the same name.
    env.set_faults(script=["hang"], hang_seconds=3.5, path_prefixes=["/medias/upload-file"])
    first = env.run()
    assert first.uploaded == 6
    _wait_for(lambda: sum(len(_files_named(env, n)) for n in names) == 7)
    [twice] = [i for i, n in enumerate(names) if len(_files_named(env, n)) == 2]
    kept = env.store.media_uploads(SLUG, env.location_id())[added[twice]["sha256"]].crm_file_id

    env.crm.reset_stats()
    sweep = env.run()

    assert sweep.duplicates_removed == 1 and sweep.uploaded == 0
    assert [f["id"] for f in _files_named(env, names[twice])] == [kept]
    assert env.crm.media_bytes(kept) == contents[twice]
    assert env.crm_writes() == {"DELETE /medias/{id}": 1}
    assert_no_duplicates(env)
    _assert_ledger_matches_the_crm(env)
    # The folder stays watched for an hour, with reads only; after that, an unchanged run calls nothing.
    env.crm.reset_stats()
    env.run()
    assert env.crm_writes() == {} and env.crm_requests() > 0
    later = lambda: datetime.now(UTC) + timedelta(hours=2)  # noqa: E731
    env.run(clock=later)
    env.crm.reset_stats()
    env.run()
    assert env.crm_requests() == 0


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler in the importer catches it."""


def _killing_crm(env: MediaEnv, after_uploads: int, when: str) -> AesthetixCrmHook:
    """A CRM hook whose task 'dies' from upload number `after_uploads + 1` on: before sending it, or after the CRM
    confirmed it but before the store could record it. With several uploads in flight, every one started after
    that dies the same way (a killed task records nothing more)."""
    _, crm = env.hooks()
    real = crm.upload_file
    count = {"n": 0}
    lock = threading.Lock()

    def upload_file(**kwargs):
        with lock:
            count["n"] += 1
            number = count["n"]
        if number > after_uploads:
            if when == "before_send":
                raise _Killed()
            real(**kwargs)
            raise _Killed()
        return real(**kwargs)

    crm.upload_file = upload_file  # type: ignore[method-assign]
    return crm


@pytest.mark.parametrize("when", ["before_send", "after_crm_confirmed"])
def test_killed_mid_import_resumes_without_duplicates(media_env: MediaEnv, when: str):
    _kill_and_resume(use_window(media_env, 1), when, in_flight=1)


@pytest.mark.parametrize("when", ["before_send", "after_crm_confirmed"])
def test_killed_with_uploads_in_flight_resumes_without_duplicates(sqlite_media_env: MediaEnv, when: str):
    _kill_and_resume(use_window(sqlite_media_env, 4), when, in_flight=4)


def _kill_and_resume(env: MediaEnv, when: str, in_flight: int) -> None:
    with pytest.raises(_Killed):
        env.run(crm=_killing_crm(env, after_uploads=40, when=when))
    # A dying task sends nothing new: uploads of the window not yet sent are dropped (their open ledger rows are
    # uploaded on resume); those already sent land or not, unrecorded.
    ledger = env.store.media_uploads(SLUG, env.location_id())
    confirmed = {sha for sha, u in ledger.items() if u.confirmed}
    open_rows = {sha for sha, u in ledger.items() if not u.confirmed}
    in_crm = {hashlib.sha256(env.crm.media_bytes(f["id"])).hexdigest() for f in env.files()}
    if in_flight == 1:
        assert (len(confirmed), len(open_rows)) == (40, 1)  # the one in flight
    else:
        # Confirmed as their answers came back: up to the window's others may not have been recorded yet.
        assert 40 - in_flight < len(confirmed) <= 40 and 1 <= len(open_rows) <= in_flight
    assert confirmed <= in_crm, "nothing is confirmed that the CRM does not hold"
    # Up to the 40th, uploads landed, recorded or not (with several in flight, the last few may have been dropped
    # unsent); after them, every upload out died before (or after) it was sent.
    if in_flight == 1:
        assert len(in_crm) == (40 if when == "before_send" else len(confirmed) + len(open_rows))
    else:
        assert len(confirmed) <= len(in_crm) <= len(confirmed) + len(open_rows)
        assert len(in_crm) <= 40 or when == "after_crm_confirmed"
    env.crm.reset_stats()

    resumed = env.run()

    # Open rows whose file is in the CRM are recovered by name; the others are uploaded again.
    assert resumed.recovered == len(open_rows & in_crm)
    assert resumed.uploaded == 120 - len(confirmed) - resumed.recovered
    writes = env.crm_writes()
    assert writes[UPLOAD] == 120 - len(in_crm)
    assert set(writes) <= {UPLOAD, "POST /medias/folder"}  # folders of categories not reached
    assert len(env.files()) == 120 and len(env.folders()) == 6
    assert_no_duplicates(env)
    _assert_ledger_matches_the_crm(env)


@IN_FLIGHT
def test_category_folder_deleted_in_the_crm_is_found_again_or_recreated(sqlite_media_env: MediaEnv, in_flight: int):
    env = use_window(sqlite_media_env, in_flight)
    env.run()
    seasonal = next(f for f in env.folders() if f["name"] == "Seasonal")
    _, crm = env.hooks()
    assert crm.delete_media(seasonal["id"])  # a practice tidying up its media library
    # Several changed assets: with a window, several uploads into the gone folder are out at once.
    changed = [a for a in env.cherry_assets() if a["category"] == "Seasonal"][:5]
    for asset in changed:
        env.cherry.change_asset(asset["id"])

    summary = env.run()

    assert summary.new_versions == 5
    assert summary.folders_created == 1 and summary.folders_found == 1  # Seasonal anew; Cherry looked up again
    folders = env.folders()
    assert sorted(f["name"] for f in folders) == sorted(
        ["Cherry", "Seasonal", "Holiday", "Promotions", "Social", "Email"]
    )
    assert len(env.tree()["Cherry/Seasonal"]) == 5
    assert_no_duplicates(env)
    _assert_ledger_is_recorded(env)


def _assert_ledger_is_recorded(env: MediaEnv) -> None:
    """Every ledger row is confirmed and points at a file that is there (files of deleted folders may be gone)."""
    files = {f["id"] for f in env.files()}
    ledger = env.store.media_uploads(SLUG, env.location_id())
    assert all(u.confirmed and u.crm_file_id in files for u in ledger.values() if u.category == "Seasonal")
