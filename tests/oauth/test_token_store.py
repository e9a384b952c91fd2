"""The token store: Fernet ciphertext only, key rotation, and the row lock that makes a rotation single-flight
across processes (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from cherry_sync.store.oauth_tokens import COMPANY, LOCATION, TokenCipher, TokenKeyError
from cherry_sync.store.schema_oauth import crm_oauth_tokens
from tests.oauth.store_worker import rotate_once


def test_cipher_round_trip_and_rotation():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_with_old = TokenCipher(old).encrypt("tok-1")
    assert "tok-1" not in sealed_with_old
    rotated = TokenCipher(f"{new},{old}")  # newest first: decrypts both, encrypts with the new one
    assert rotated.decrypt(sealed_with_old) == "tok-1"
    assert TokenCipher(new).decrypt(rotated.encrypt("tok-2")) == "tok-2"
    with pytest.raises(TokenKeyError) as refused:
        TokenCipher(new).decrypt(sealed_with_old)
    assert old not in str(refused.value) and new not in str(refused.value)


@pytest.mark.parametrize("keys", ["", " , ", "not-a-key", "{good},also-bad"])
def test_cipher_refuses_bad_keys_without_echoing_them(keys):
    keys = keys.replace("{good}", Fernet.generate_key().decode())
    with pytest.raises(TokenKeyError) as refused:
        TokenCipher(keys, source="connection 'k'")
    for part in (p.strip() for p in keys.split(",")):
        if part:
            assert part not in str(refused.value)
    assert "connection 'k'" in str(refused.value)


def test_save_under_lock_bumps_generation_and_stores_only_what_it_is_given(store):
    assert store.oauth_token(COMPANY, "c1") is None
    expires = datetime.now(UTC) + timedelta(hours=1)
    with store.locked_oauth_token(COMPANY, "c1") as lock:
        assert lock.current.access_token is None and lock.current.generation == 0
        lock.save("cipher-a", "cipher-r", expires)
    with store.locked_oauth_token(COMPANY, "c1") as lock:
        assert lock.current.generation == 1
        lock.save("cipher-a2", "cipher-r2", expires)
    row = store.oauth_token(COMPANY, "c1")
    assert (row.access_token, row.refresh_token, row.generation) == ("cipher-a2", "cipher-r2", 2)
    assert row.expires_at == expires and row.updated_at.tzinfo is not None
    assert "cipher-a2" not in repr(row)  # token fields stay out of reprs
    assert store.oauth_token(LOCATION, "c1") is None  # subjects are typed


def test_an_exception_in_the_lock_rolls_back(store):
    with pytest.raises(RuntimeError), store.locked_oauth_token(LOCATION, "loc-1") as lock:
        lock.save("cipher", None, datetime.now(UTC))
        raise RuntimeError("refresh failed")
    assert store.oauth_token(LOCATION, "loc-1") is None  # not even the lock-only row is left
    with store.engine.begin() as conn:
        assert conn.execute(select(crm_oauth_tokens)).all() == []


def test_forget_drops_one_subject_type(store):
    for subject_type, subject_id in [(COMPANY, "c"), (LOCATION, "a"), (LOCATION, "b")]:
        with store.locked_oauth_token(subject_type, subject_id) as lock:
            lock.save("x", None, datetime.now(UTC))
    assert store.forget_oauth_tokens(LOCATION, ["a"]) == 1
    assert store.forget_oauth_tokens(LOCATION) == 1
    assert store.oauth_token(COMPANY, "c") is not None


@pytest.mark.parametrize("row_exists", [False, True], ids=["first-mint", "rotation"])
def test_one_rotation_across_processes(store_url, row_exists):
    """Six processes race for a row no one has filled: exactly one rotates, the others find its result. Whether
    the row is created by the race (the insert's own conflict wait) or already there (only the row lock holds)."""
    from cherry_sync.store import SyncStore, engine_from_url, migrate

    workers = 6
    migrate(engine_from_url(store_url))
    if row_exists:
        with SyncStore(engine_from_url(store_url)).locked_oauth_token(COMPANY, "agency-1"):
            pass  # leaves the lock-only row, no token
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 4.0  # spawned interpreters need a few seconds to import the package
    jobs = [{"url": store_url, "worker": n, "start_at": start_at, "hold_seconds": 0.3} for n in range(workers)]
    with ctx.Pool(workers) as pool:
        results = pool.map(rotate_once, jobs)
    assert sum(r["rotated"] for r in results) == 1, results
    assert all(r["seen"] == 1 for r in results if not r["rotated"]), results
    row = SyncStore(engine_from_url(store_url)).oauth_token(COMPANY, "agency-1")
    assert row.generation == 1
