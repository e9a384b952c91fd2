"""The event feed: cursor semantics, consistency with the data, and advance() misbehaviour."""

from __future__ import annotations

from collections import Counter

from sandbox.cherry.testing import CherrySandbox

EVENT_TYPES = {
    "patient.created",
    "patient.refreshed",
    "payment.completed",
    "payment.refunded",
    "payment.cancelled",
    "test.ping",
}


def read_feed(sandbox: CherrySandbox, practice=0, cursor: str | None = None, limit: int = 50):
    """All events from `cursor` to the end of the feed, and the cursor to resume from."""
    events = []
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        body = sandbox.get("/v1/events", practice, **params).json()
        assert body["next_cursor"], "next_cursor is never null on the event feed"
        events += body["data"]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return events, cursor


def test_feed_pages_to_the_end_and_resumes(cherry_sandbox: CherrySandbox):
    events, cursor = read_feed(cherry_sandbox, limit=37)
    assert len(events) == cherry_sandbox.admin("GET", "/practices")[0]["events"]
    assert {e["type"] for e in events} <= EVENT_TYPES
    # At the end: the cursor stays put and returns nothing new, still non-null.
    body = cherry_sandbox.get("/v1/events", 0, cursor=cursor).json()
    assert body == {"data": [], "next_cursor": cursor, "has_more": False}
    # An empty feed position is still a cursor; resuming later returns exactly what was added.
    result = cherry_sandbox.advance(minutes=15, new_patients=2, practice_id=cherry_sandbox.practices[0].id)
    later, _ = read_feed(cherry_sandbox, cursor=cursor)
    assert len(later) == result["practices"][cherry_sandbox.practices[0].id]["events"] >= 2
    assert [e["type"] for e in later].count("patient.created") == 2


def test_history_is_consistent_with_the_data(cherry_sandbox: CherrySandbox):
    events, _ = read_feed(cherry_sandbox, limit=500)
    patients = {p["id"]: p for p in cherry_sandbox.fetch_all("/v1/patients")}
    payments = {p["id"]: p for p in cherry_sandbox.fetch_all("/v1/payments")}
    created = Counter(e["patient_id"] for e in {e["id"]: e for e in events}.values() if e["type"] == "patient.created")
    assert set(created) == set(patients) and set(created.values()) == {1}
    newest: dict[str, dict] = {}
    for event in events:
        assert event["id"].startswith("evt_")
        if event["type"] == "test.ping":
            assert event["data"] == {} and event["patient_id"] is None and event["object_type"] is None
            continue
        data = event["data"]
        assert event["occurred_at"] == data["updated_at"]
        key = (event["object_type"], data["id"])
        if key not in newest or data["updated_at"] >= newest[key]["updated_at"]:
            newest[key] = data
        if event["object_type"] == "payment":
            assert event["patient_id"] == data["patient_id"] in patients
            assert (
                event["type"]
                == {
                    "COMPLETED": "payment.completed",
                    "REFUNDED": "payment.refunded",
                    "PARTIALLY_REFUNDED": "payment.refunded",
                    "CANCELLED": "payment.cancelled",
                }[data["status"]]
            )
        else:
            assert event["patient_id"] == data["id"]
    # Replaying the feed (newest version wins) reproduces the current data exactly.
    assert {k[1]: v for k, v in newest.items() if k[0] == "patient"} == patients
    assert {k[1]: v for k, v in newest.items() if k[0] == "payment"} == payments
    assert "test.ping" in {e["type"] for e in events}


def test_feed_is_time_ordered_apart_from_late_redeliveries(cherry_sandbox: CherrySandbox):
    events, _ = read_feed(cherry_sandbox, limit=500)
    first_seen: dict[str, int] = {}
    stamps = []
    for i, event in enumerate(events):
        if event["id"] in first_seen:
            assert events[first_seen[event["id"]]] == event  # a re-delivery is the very same event
            continue
        first_seen[event["id"]] = i
        stamps.append(event["occurred_at"])
    assert stamps == sorted(stamps)


def test_advance_emits_new_events_with_duplicates_and_out_of_order(cherry_sandbox: CherrySandbox):
    practice = cherry_sandbox.practices[0]
    _, cursor = read_feed(cherry_sandbox, practice)
    clock_before = cherry_sandbox.now()
    result = cherry_sandbox.advance(
        minutes=120,
        new_patients=4,
        refreshed=10,
        payments=4,
        refunds=2,
        cancellations=1,
        pings=1,
        duplicate_share=0.2,
        out_of_order_share=0.5,
        practice_id=practice.id,
    )
    counts = result["practices"][practice.id]
    assert set(result["practices"]) == {practice.id}  # only the practice asked for
    assert counts["new_patients"] == 4 and counts["refreshed"] == 10 and counts["payments"] == 4
    assert counts["refunds"] == 2 and counts["cancellations"] == 1 and counts["pings"] == 1
    assert counts["duplicates"] >= 1 and counts["out_of_order"] == 5
    assert cherry_sandbox.now() > clock_before and result["now"] == cherry_sandbox.now()
    assert "first_name" not in str(result)  # counts only, no patient data

    new, _ = read_feed(cherry_sandbox, practice, cursor=cursor)
    assert len(new) == counts["events"]
    ids = Counter(e["id"] for e in new)
    assert sum(n - 1 for n in ids.values()) == counts["duplicates"]
    types = Counter(e["type"] for e in {e["id"]: e for e in new}.values())
    assert types["patient.created"] == 4 and types["payment.completed"] == 4
    assert types["payment.refunded"] == 2 and types["payment.cancelled"] == 1 and types["test.ping"] == 1
    # Out of order: an older version of a patient arrives after a newer one.
    stale = 0
    newest: dict[str, str] = {}
    for event in new:
        if event["object_type"] != "patient":
            continue
        pid, stamp = event["patient_id"], event["data"]["updated_at"]
        if pid in newest and stamp < newest[pid]:
            stale += 1
        newest[pid] = max(stamp, newest.get(pid, stamp))
    assert stale >= counts["out_of_order"]
    # Every new event happened inside the advanced interval.
    assert all(clock_before < e["occurred_at"] <= result["now"] for e in new)
    # Other practices got nothing.
    assert cherry_sandbox.get("/v1/events", 1, limit=1).json()["has_more"]


def test_newest_event_versions_match_the_api_after_advances(cherry_sandbox: CherrySandbox):
    for _ in range(2):
        cherry_sandbox.advance(
            minutes=60 * 24 * 45,
            new_patients=3,
            refreshed=8,
            payments=3,
            refunds=1,
            cancellations=1,
            duplicate_share=0.3,
            out_of_order_share=0.5,
        )
    practice = cherry_sandbox.practices[2]
    events, _ = read_feed(cherry_sandbox, practice, limit=500)
    newest: dict[str, dict] = {}
    for event in events:
        if event["object_type"] == "patient":
            data = event["data"]
            if data["id"] not in newest or data["updated_at"] >= newest[data["id"]]["updated_at"]:
                newest[data["id"]] = data
    patients = {p["id"]: p for p in cherry_sandbox.fetch_all("/v1/patients", practice)}
    assert newest == patients
    # 90 days later some approvals have expired on their own, with an event saying so.
    statuses = Counter(p["account_status"] for p in patients.values())
    assert statuses["EXPIRED"] > 0


def test_advance_is_deterministic(cherry_sandbox_factory):
    pinned = {"now": "2026-01-15T00:00:00Z"}
    a, b = cherry_sandbox_factory(**pinned), cherry_sandbox_factory(**pinned)
    plan = {
        "minutes": 90,
        "new_patients": 3,
        "refreshed": 6,
        "payments": 2,
        "refunds": 1,
        "duplicate_share": 0.3,
        "out_of_order_share": 0.5,
    }
    assert a.advance(**plan) == b.advance(**plan)
    assert read_feed(a, 1, limit=500) == read_feed(b, 1, limit=500)


def test_advance_rejects_bad_input(cherry_sandbox: CherrySandbox):
    for body in ({"minutes": -1}, {"duplicate_share": 2}, {"unknown": 1}, {"practice_id": "prac_nope"}):
        response = cherry_sandbox.http.post(cherry_sandbox.base_url + "/_sandbox/advance", json=body, timeout=5)
        assert response.status_code in (400, 404), body
        assert "error" in response.json()


def test_admin_edits_go_through_the_feed(cherry_sandbox: CherrySandbox):
    _, cursor = read_feed(cherry_sandbox)
    patient = next(p for p in cherry_sandbox.fetch_all("/v1/patients") if p["account_status"] == "ACTIVE")
    result = cherry_sandbox.edit_patient(patient["id"], phone="415.555.0199", email=None)
    assert set(result) == {"id", "updated_at"}
    edited = cherry_sandbox.get(f"/v1/patients/{patient['id']}", 0).json()
    assert edited["phone"] == "415.555.0199" and edited["email"] is None
    assert edited["updated_at"] == result["updated_at"] > patient["updated_at"]

    payment = next(p for p in cherry_sandbox.fetch_all("/v1/payments") if p["status"] == "COMPLETED")
    refunded = cherry_sandbox.settle_payment(payment["id"], "refund")
    assert refunded["status"] == "REFUNDED" and refunded["refund_amount"] == payment["amount"]
    assert refunded["updated_at"] > edited["updated_at"]  # every admin write is strictly newer

    new, _ = read_feed(cherry_sandbox, cursor=cursor)
    assert [e["type"] for e in new][:2] == ["patient.refreshed", "payment.refunded"]
    assert new[0]["data"] == edited and new[1]["data"] == refunded
    assert all(e["type"] == "patient.refreshed" for e in new[2:])  # the balance given back, if any

    base = cherry_sandbox.base_url + "/_sandbox"
    assert (
        cherry_sandbox.http.post(
            f"{base}/payments/{payment['id']}/settle", json={"kind": "cancel"}, timeout=5
        ).status_code
        == 400
    )  # no longer COMPLETED
    assert (
        cherry_sandbox.http.patch(
            f"{base}/patients/{patient['id']}", json={"account_status": "ACTIVE"}, timeout=5
        ).status_code
        == 400
    )
    assert (
        cherry_sandbox.http.patch(
            f"{base}/patients/{patient['id']}", json={"location_id": "loc_nope"}, timeout=5
        ).status_code
        == 400
    )
    assert cherry_sandbox.http.patch(f"{base}/patients/pat_nope", json={}, timeout=5).status_code == 404


def test_deactivations_close_active_accounts_and_null_their_balance(cherry_sandbox: CherrySandbox):
    practice = cherry_sandbox.practices[0]
    before = {p["id"]: p for p in cherry_sandbox.fetch_all("/v1/patients", 0)}
    _, cursor = read_feed(cherry_sandbox, limit=500)
    result = cherry_sandbox.advance(minutes=30, deactivations=3, practice_id=practice.id)
    assert result["practices"][practice.id]["deactivations"] == 3
    after = {p["id"]: p for p in cherry_sandbox.fetch_all("/v1/patients", 0)}
    closed = [pid for pid, p in after.items() if before[pid]["account_status"] == "ACTIVE" and p != before[pid]]
    assert len(closed) == 3
    for pid in closed:
        assert after[pid]["account_status"] == "INACTIVE"
        assert after[pid]["balance_available"] is None and after[pid]["balance_status"] is None
    events, _ = read_feed(cherry_sandbox, cursor=cursor)
    assert sorted(e["data"]["id"] for e in events if e["type"] == "patient.refreshed") == sorted(closed)
