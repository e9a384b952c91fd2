"""Malformed records: corrupted on demand or at start, served as such, repaired visibly."""

from __future__ import annotations

import re

import pytest

from sandbox.cherry.contract import errors
from sandbox.cherry.malformed import MalformedKind
from sandbox.cherry.testing import CherrySandbox


def last_event(sandbox: CherrySandbox, practice=0) -> dict:
    """The newest event of the feed (corrupt and repair each append exactly one)."""
    return sandbox.fetch_all("/v1/events", practice)[-1]


def active_patient(sandbox: CherrySandbox) -> dict:
    return next(p for p in sandbox.fetch_all("/v1/patients") if p["account_status"] == "ACTIVE" and p["email"])


CHECKS = {
    "missing_id": lambda p: "id" not in p,
    "bad_email": lambda p: not re.match(r"^[^@\s]+@[^@\s]+\.[a-z]+$", p["email"].strip(), re.I),
    "bad_phone": lambda p: len(re.sub(r"\D", "", p["phone"])) not in (10, 11) or re.search(r"[A-Za-z]", p["phone"]),
    "non_numeric_money": lambda p: not re.match(r"^\d+\.\d{2}$", p["balance_available"] or "x"),
    "impossible_date": lambda p: p["date_of_birth"].endswith("-02-30"),
    "unknown_status": lambda p: (
        p["account_status"] not in {"ACTIVE", "INACTIVE", "EXPIRED", "DECLINED", "PENDING_REVIEW"}
    ),
    "oversize_text": lambda p: len(p["last_name"]) == 10_000,
}


@pytest.mark.parametrize("kind", [k.value for k in MalformedKind])
def test_corrupt_then_repair_a_patient(cherry_sandbox: CherrySandbox, kind):
    patient = active_patient(cherry_sandbox)
    pid = patient["id"]
    before = cherry_sandbox.now()
    result = cherry_sandbox.corrupt(pid, kind)
    assert result["kind"] == kind and "first_name" not in result

    served = cherry_sandbox.get(f"/v1/patients/{pid}", 0).json()
    assert CHECKS[kind](served), served.get("email")
    assert served["updated_at"] >= before
    listed = cherry_sandbox.fetch_all("/v1/patients", updated_since=before)
    assert served in listed  # incremental readers see the corrupted version...
    event = last_event(cherry_sandbox)
    assert event["type"] == "patient.refreshed" and event["patient_id"] == pid
    assert event["data"] == served  # ...and so does the feed
    assert {
        "practice_id": cherry_sandbox.practices[0].id,
        "object_type": "patient",
        "id": pid,
        "kind": kind,
    } in cherry_sandbox.admin("GET", "/malformed")
    if kind not in ("bad_email", "bad_phone"):  # the contract cannot tell a typo from an address
        assert errors("Patient", served)

    cherry_sandbox.advance(minutes=5)  # the repair happens later than the corruption
    repaired_at = cherry_sandbox.now()
    cherry_sandbox.repair(pid)
    fixed = cherry_sandbox.get(f"/v1/patients/{pid}", 0).json()
    assert errors("Patient", fixed) == []
    assert not CHECKS[kind](fixed)
    assert fixed["updated_at"] == cherry_sandbox.now() > repaired_at > served["updated_at"]
    assert {k: v for k, v in fixed.items() if k != "updated_at"} == {
        k: v for k, v in patient.items() if k != "updated_at"
    }
    event = last_event(cherry_sandbox)
    assert event["type"] == "patient.refreshed" and event["data"] == fixed
    assert fixed in cherry_sandbox.fetch_all("/v1/patients", updated_since=repaired_at)
    assert cherry_sandbox.admin("GET", "/malformed") == []


@pytest.mark.parametrize(
    "kind", ["missing_id", "non_numeric_money", "impossible_date", "unknown_status", "oversize_text"]
)
def test_corrupt_then_repair_a_payment(cherry_sandbox: CherrySandbox, kind):
    payment = cherry_sandbox.get("/v1/payments", 0, limit=1).json()["data"][0]
    cherry_sandbox.corrupt(payment["id"], kind, object_type="payment")
    served = cherry_sandbox.get(f"/v1/payments/{payment['id']}", 0).json()
    assert errors("Payment", served)
    event = last_event(cherry_sandbox)
    assert event["object_type"] == "payment" and event["data"] == served
    cherry_sandbox.repair(payment["id"])
    fixed = cherry_sandbox.get(f"/v1/payments/{payment['id']}", 0).json()
    assert errors("Payment", fixed) == []
    assert {k: v for k, v in fixed.items() if k != "updated_at"} == {
        k: v for k, v in payment.items() if k != "updated_at"
    }


def test_admin_rejects_impossible_corruptions(cherry_sandbox: CherrySandbox):
    payment = cherry_sandbox.get("/v1/payments", 0, limit=1).json()["data"][0]
    base = cherry_sandbox.base_url + "/_sandbox/malformed"
    bad = [
        {"id": payment["id"], "kind": "bad_email", "object_type": "payment"},
        {"id": "pat_nope", "kind": "bad_email"},
        {"id": payment["id"], "kind": "weird"},
    ]
    for body in bad:
        response = cherry_sandbox.http.post(base, json=body, timeout=5)
        assert response.status_code in (400, 404), body
    assert cherry_sandbox.http.delete(base + "/pat_not_malformed", timeout=5).status_code == 404


def test_malformed_share_at_start(cherry_sandbox_factory):
    sandbox = cherry_sandbox_factory(malformed_share=0.2, rate_limits={"enabled": False})
    listed = sandbox.admin("GET", "/malformed")
    assert len(listed) == 3 * 8  # 20 % of 40 patients in each practice
    assert {row["kind"] for row in listed} == {k.value for k in MalformedKind}
    for index, practice in enumerate(sandbox.practices):
        bad = {row["id"]: row["kind"] for row in listed if row["practice_id"] == practice.id}
        dump = {row["_id"]: row for row in sandbox.admin("GET", f"/practices/{practice.id}/patients")}
        for pid, kind in bad.items():
            if kind in ("bad_phone", "bad_email") and dump[pid].get(kind[4:]) is None:
                continue
            assert CHECKS[kind](dump[pid]), kind
        served = sandbox.fetch_all("/v1/patients", index)
        assert len(served) == 40
        good = [row for row in served if row.get("id") not in bad and "id" in row]
        assert good and all(errors("Patient", row) == [] for row in good)
        # The feed carried the malformed versions too: the newest version of each is the malformed one.
        latest: dict[str, dict] = {}
        for event in sandbox.fetch_all("/v1/events", index):
            pid, data = event["patient_id"], event["data"]
            if event["object_type"] == "patient" and data["updated_at"] >= latest.get(pid, data)["updated_at"]:
                latest[pid] = data
        for pid in bad:
            assert latest[pid] == {k: v for k, v in dump[pid].items() if k != "_id"}


def test_same_population_with_or_without_malformed(cherry_sandbox_factory):
    clean = cherry_sandbox_factory(now="2026-01-15T00:00:00Z")
    dirty = cherry_sandbox_factory(now="2026-01-15T00:00:00Z", malformed_share=0.1)
    bad = {row["id"] for row in dirty.admin("GET", "/malformed")}
    a = {p["id"]: p for p in clean.fetch_all("/v1/patients")}
    b = {p.get("id"): p for p in dirty.fetch_all("/v1/patients")}
    assert {pid: row for pid, row in a.items() if pid not in bad} == {
        pid: row for pid, row in b.items() if pid not in bad and pid is not None
    }
