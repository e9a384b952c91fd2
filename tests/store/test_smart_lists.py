"""Smart-list queries: membership and segments in SQL, the diff against what was applied, and its bookkeeping.

Every test runs on SQLite and PostgreSQL (the `store` fixture). The SQL is checked against the plain-Python rule
(`segments_of`) on generated patients moving across thresholds and statuses over several rounds.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import JSON, column, insert, select, table, update

from cherry_sync.registry import PracticeConfig
from cherry_sync.smart_list.segments import SEGMENTS, SegmentPlan, segments_of
from cherry_sync.store import PatientSnapshot, SyncStore, engine_from_url, migrate
from cherry_sync.store.column_types import UTCDateTime
from cherry_sync.store.engine import dispose_engine
from cherry_sync.store.schema import cherry_patients
from cherry_sync.store.smart_lists import ContactChange, ContactTags, tag_set, tag_text

SLUG = "glow"
OTHER = "lumen"
PLAN = SegmentPlan.from_practice(
    PracticeConfig.model_validate(
        {"slug": SLUG, "display_name": "Glow", "timezone": "UTC", "cherry_conn_id": "c", "crm_conn_id": "m"}
    )
)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
STATUSES = ("ACTIVE", "INACTIVE", "EXPIRED", "DECLINED", "PENDING_REVIEW")


def _practice(slug: str) -> PracticeConfig:
    return PracticeConfig.model_validate(
        {"slug": slug, "display_name": slug.title(), "timezone": "UTC", "cherry_conn_id": "c", "crm_conn_id": "m"}
    )


@pytest.fixture
def smart_store(store: SyncStore) -> SyncStore:
    store.sync_practices([_practice(SLUG), _practice(OTHER)])
    return store


class Patients:
    """Writes patients through the store's own upsert (newer versions each time) and records their contacts."""

    def __init__(self, store: SyncStore, slug: str = SLUG) -> None:
        self.store = store
        self.slug = slug
        self.rows: dict[str, dict] = {}
        self.contacts: dict[str, str] = {}
        self.version = 0

    def put(self, patient_id: str, *, status="ACTIVE", balance=None, increase=False, contact: str | None = "auto"):
        self.version += 1
        row = {"status": status, "balance": None if balance is None else Decimal(balance), "increase": increase}
        self.rows[patient_id] = row
        snapshot = {"id": patient_id, "account_status": status, "increase_eligible": increase}
        if balance is not None:
            snapshot["balance_available"] = str(balance)
        self.store.upsert_patient_snapshots(
            self.slug,
            [
                PatientSnapshot(
                    patient_id=patient_id,
                    snapshot=snapshot,
                    source_updated_at=T0 + timedelta(seconds=self.version),
                    account_status=status,
                    balance_available=row["balance"],
                )
            ],
        )
        if contact == "auto":
            contact = self.contacts.get(patient_id, f"ct-{patient_id}")
        if contact is not None:
            self.contacts[patient_id] = contact
            self.store.mark_written(self.slug, [(patient_id, contact, f"hash-{self.version}")])

    def expected(self, plan: SegmentPlan = PLAN) -> dict[str, frozenset[str]]:
        """contact id -> wanted tags, by the plain-Python rule (union over patients sharing a contact)."""
        wanted: dict[str, set[str]] = {}
        for patient_id, contact in self.contacts.items():
            row = self.rows[patient_id]
            segments = segments_of(row["status"], row["balance"], row["increase"], plan.threshold)
            wanted.setdefault(contact, set()).update(plan.tags[name] for name in segments)
        return {contact: frozenset(tags) for contact, tags in wanted.items()}


def apply_all(store: SyncStore, changes: list[ContactChange], slug: str = SLUG) -> None:
    """What a push that fully succeeds records: every wanted tag confirmed, nothing pending."""
    store.save_contact_tags(slug, [ContactTags(c.contact_id, c.patient_id, c.wanted, frozenset()) for c in changes])


def applied(store: SyncStore, slug: str = SLUG) -> dict[str, frozenset[str]]:
    return {contact: state.confirmed for contact, state in store.contact_tags(slug).items()}


def test_tag_text_round_trip():
    assert tag_text(["b", "a", "a"]) == "a,b,"
    assert tag_set("a,b,") == {"a", "b"}
    assert tag_set("") == tag_set(None) == frozenset()


def test_first_diff_adds_every_member_with_its_segments_and_nobody_else(smart_store):
    patients = Patients(smart_store)
    patients.put("p1", status="ACTIVE", balance="6000.00", increase=True)
    patients.put("p2", status="EXPIRED", balance="10.00")
    patients.put("p3", status="INACTIVE")
    patients.put("p4", status="ACTIVE", balance="5000.00")  # at the threshold: in
    patients.put("p5", status="ACTIVE", balance="4999.99")  # a cent under: out
    patients.put("p6", status="ACTIVE", contact=None)  # never synced to the CRM: not a member
    Patients(smart_store, OTHER).put("q1", status="ACTIVE")  # another practice

    changes = smart_store.smart_list_changes(SLUG, PLAN.tags, PLAN.threshold)

    assert {c.contact_id: c.to_add for c in changes} == patients.expected()
    assert all(not c.to_remove for c in changes)
    assert changes[0].wanted == {
        "cherry-patient",
        "cherry-active",
        "cherry-balance-5k-plus",
        "cherry-increase-eligible",
    }
    assert {c.contact_id: c.wanted for c in changes}["ct-p4"] == {
        "cherry-patient",
        "cherry-active",
        "cherry-balance-5k-plus",
    }
    assert {c.contact_id: c.wanted for c in changes}["ct-p5"] == {"cherry-patient", "cherry-active"}
    assert smart_store.smart_list_counts(SLUG, PLAN.threshold) == {
        "all": 5,
        "active": 3,
        "inactive": 2,
        "balance_over_threshold": 2,
        "increase_eligible": 1,
    }


def test_membership_matches_the_rule_over_rounds_of_moves(smart_store):
    rng = random.Random(5)
    patients = Patients(smart_store)
    for i in range(120):
        patients.put(
            f"p{i:03d}",
            status=rng.choice(STATUSES),
            balance=None if rng.random() < 0.2 else f"{rng.randrange(0, 900_000) / 100:.2f}",
            increase=rng.random() < 0.3,
            contact=None if rng.random() < 0.1 else "auto",
        )
    for round_no in range(4):
        changes = smart_store.smart_list_changes(SLUG, PLAN.tags, PLAN.threshold)
        before = applied(smart_store)
        for change in changes:
            assert change.to_add == change.wanted - before.get(change.contact_id, frozenset())
            assert change.to_remove == before.get(change.contact_id, frozenset()) - change.wanted
        apply_all(smart_store, changes)
        assert applied(smart_store) == patients.expected(), f"round {round_no}"
        assert smart_store.smart_list_changes(SLUG, PLAN.tags, PLAN.threshold) == []
        counts = Counter(
            name
            for row in (patients.rows[p] for p in patients.contacts)
            for name in segments_of(row["status"], row["balance"], row["increase"], PLAN.threshold)
        )
        assert smart_store.smart_list_counts(SLUG, PLAN.threshold) == {name: counts[name] for name in SEGMENTS}
        # Move a fifth of the patients across statuses, the balance threshold and eligibility; sync a few more.
        for patient_id in rng.sample(sorted(patients.rows), 24):
            patients.put(
                patient_id,
                status=rng.choice(STATUSES),
                balance=rng.choice([None, "4999.99", "5000.00", "120.00", "7300.50"]),
                increase=rng.random() < 0.5,
            )


def test_moves_change_only_the_moved_contacts(smart_store):
    patients = Patients(smart_store)
    patients.put("p1", status="ACTIVE", balance="7000.00")
    patients.put("p2", status="ACTIVE", balance="100.00")
    patients.put("p3", status="INACTIVE")
    apply_all(smart_store, smart_store.smart_list_changes(SLUG, PLAN.tags, PLAN.threshold))

    patients.put("p1", status="ACTIVE", balance="4000.00")  # spent below the threshold
    patients.put("p3", status="ACTIVE", balance="5200.00", increase=True)  # re-approved
    changes = {c.contact_id: c for c in smart_store.smart_list_changes(SLUG, PLAN.tags, PLAN.threshold)}

    assert set(changes) == {"ct-p1", "ct-p3"}
    assert changes["ct-p1"].to_add == frozenset() and changes["ct-p1"].to_remove == {"cherry-balance-5k-plus"}
    assert changes["ct-p3"].to_add == {"cherry-active", "cherry-balance-5k-plus", "cherry-increase-eligible"}
    assert changes["ct-p3"].to_remove == {"cherry-inactive"}


def test_renamed_tag_is_removed_where_applied_and_the_new_one_added(smart_store):
    patients = Patients(smart_store)
    patients.put("p1", status="ACTIVE")
    patients.put("p2", status="DECLINED")
    apply_all(smart_store, smart_store.smart_list_changes(SLUG, PLAN.tags, PLAN.threshold))
    renamed = SegmentPlan(tags={**PLAN.tags, "active": "cherry-live"}, threshold=PLAN.threshold)

    changes = smart_store.smart_list_changes(SLUG, renamed.tags, renamed.threshold)

    assert [(c.contact_id, c.to_add, c.to_remove) for c in changes] == [
        ("ct-p1", frozenset({"cherry-live"}), frozenset({"cherry-active"}))
    ]


def test_a_contact_that_leaves_loses_every_applied_tag_and_is_then_forgotten(smart_store):
    patients = Patients(smart_store)
    patients.put("p1", status="ACTIVE", balance="9000.00")
    apply_all(smart_store, smart_store.smart_list_changes(SLUG, PLAN.tags, PLAN.threshold))

    patients.put("p1", status="ACTIVE", balance="9000.00", contact="ct-new")  # re-matched to another contact
    changes = {c.contact_id: c for c in smart_store.smart_list_changes(SLUG, PLAN.tags, PLAN.threshold)}

    assert changes["ct-p1"].wanted == frozenset()
    assert changes["ct-p1"].to_remove == {"cherry-patient", "cherry-active", "cherry-balance-5k-plus"}
    assert changes["ct-p1"].patient_id == "p1"
    assert changes["ct-new"].to_add == changes["ct-p1"].to_remove
    smart_store.save_contact_tags(
        SLUG, [ContactTags("ct-p1", "p1"), ContactTags("ct-new", "p1", changes["ct-new"].wanted)]
    )
    assert set(smart_store.contact_tags(SLUG)) == {"ct-new"}


def test_pending_tags_are_sent_again_when_wanted_and_removed_when_not(smart_store):
    patients = Patients(smart_store)
    patients.put("p1", status="ACTIVE")
    smart_store.save_contact_tags(
        SLUG,
        [ContactTags("ct-p1", "p1", frozenset({"cherry-patient"}), frozenset({"cherry-active", "cherry-inactive"}))],
    )

    (change,) = smart_store.smart_list_changes(SLUG, PLAN.tags, PLAN.threshold)

    assert change.to_add == {"cherry-active"}
    assert change.to_remove == {"cherry-inactive"}


def test_patients_sharing_a_contact_give_it_the_union_of_their_segments(smart_store):
    patients = Patients(smart_store)
    patients.put("p2", status="ACTIVE", balance="8000.00", contact="ct-family")
    patients.put("p1", status="INACTIVE", contact="ct-family")

    (change,) = smart_store.smart_list_changes(SLUG, PLAN.tags, PLAN.threshold)

    assert change.patient_id == "p1"
    assert change.wanted == {"cherry-patient", "cherry-active", "cherry-inactive", "cherry-balance-5k-plus"}
    apply_all(smart_store, [change])
    assert smart_store.smart_list_changes(SLUG, PLAN.tags, PLAN.threshold) == []


def test_increase_eligible_is_mirrored_into_its_column_and_read_from_json_when_missing(smart_store):
    patients = Patients(smart_store)
    patients.put("p1", increase=True)
    patients.put("p2", increase=False)
    with smart_store.engine.begin() as conn:
        mirrored = dict(conn.execute(select(cherry_patients.c.patient_id, cherry_patients.c.increase_eligible)).all())
        assert mirrored == {"p1": True, "p2": False}
        # A row written before the column existed (or by a writer that does not fill it): the JSON decides.
        conn.execute(update(cherry_patients).values(increase_eligible=None))

    members = {m.patient_id: m.segments for m in smart_store.smart_list_members(SLUG, PLAN.threshold)}

    assert "increase_eligible" in members["p1"] and "increase_eligible" not in members["p2"]


# Where SQL and Python could part ways: the threshold to the cent, no balance, no status, a status in another case,
# a flag that is false, missing, or only in the snapshot (its column cleared).
EDGE_MEMBERS = {
    "at-threshold": {"status": "ACTIVE", "balance": "{t}", "increase": True},
    "a-cent-under": {"status": "ACTIVE", "balance": "{under}", "increase": False},
    "a-cent-over": {"status": "INACTIVE", "balance": "{over}", "increase": None},
    "no-balance": {"status": "ACTIVE", "balance": None, "increase": False},
    "no-status": {"status": None, "balance": "{t}", "increase": None},
    "lowercase-status": {"status": "active", "balance": "0.00", "increase": True},
    "inactive-zero": {"status": "INACTIVE", "balance": "0.00", "increase": False},
    "expired-rich": {"status": "EXPIRED", "balance": "900000.00", "increase": True},
    "flag-only-in-snapshot": {"status": "PENDING_REVIEW", "balance": "{t}", "increase": True, "clear_column": True},
    "no-flag-anywhere": {"status": "DECLINED", "balance": None, "increase": None, "clear_column": True},
}


@pytest.mark.parametrize("threshold", [PLAN.threshold, Decimal("0.00"), Decimal("0.01")], ids=str)
def test_sql_and_python_segments_agree_on_edge_values(smart_store, threshold):
    """The store's SQL and `segments_of` are both derived from `SEGMENT_DEFINITIONS`; they must agree value for value."""
    patients = Patients(smart_store)
    amounts = {"t": threshold, "under": max(threshold - Decimal("0.01"), Decimal("0.00")), "over": threshold + 1}
    cleared = []
    for patient_id, edge in EDGE_MEMBERS.items():
        balance = (
            None if edge["balance"] is None else edge["balance"].format(**{k: f"{v:.2f}" for k, v in amounts.items()})
        )
        patients.put(patient_id, status=edge["status"], balance=balance, increase=edge["increase"])
        if edge.get("clear_column"):
            cleared.append(patient_id)
    with smart_store.engine.begin() as conn:
        conn.execute(
            update(cherry_patients).where(cherry_patients.c.patient_id.in_(cleared)).values(increase_eligible=None)
        )

    in_sql = {m.patient_id: m.segments for m in smart_store.smart_list_members(SLUG, threshold)}
    in_python = {
        patient_id: segments_of(row["status"], row["balance"], row["increase"], threshold)
        for patient_id, row in patients.rows.items()
    }

    assert in_sql == in_python
    assert in_sql["at-threshold"] >= {"all", "active", "balance_over_threshold", "increase_eligible"}
    assert "balance_over_threshold" not in in_sql["no-balance"]
    assert in_sql["no-status"] >= {"inactive"} and "active" not in in_sql["lowercase-status"]
    assert (
        "increase_eligible" in in_sql["flag-only-in-snapshot"] and "increase_eligible" not in in_sql["no-flag-anywhere"]
    )
    counts = Counter(name for segments in in_python.values() for name in segments)
    assert smart_store.smart_list_counts(SLUG, threshold) == {name: counts[name] for name in SEGMENTS}


def test_migration_fills_increase_eligible_for_existing_rows(store_url):
    engine = engine_from_url(store_url)
    try:
        migrate(engine, "0001_initial")
        old = SyncStore(engine)
        old.sync_practices([_practice(SLUG)])
        # The table as revision 0001 created it (no increase_eligible column yet).
        before = table(
            "cherry_patients",
            *(column(name) for name in ("practice_slug", "patient_id", "account_status")),
            column("snapshot", JSON()),
            *(column(name, UTCDateTime()) for name in ("source_updated_at", "first_seen_at", "last_seen_at")),
        )
        with engine.begin() as conn:
            conn.execute(
                insert(before),
                [
                    {
                        "practice_slug": SLUG,
                        "patient_id": patient_id,
                        "account_status": "ACTIVE",
                        "snapshot": {"increase_eligible": flag},
                        "source_updated_at": T0,
                        "first_seen_at": T0,
                        "last_seen_at": T0,
                    }
                    for patient_id, flag in (("p1", True), ("p2", False))
                ],
            )
        migrate(engine)
        with engine.begin() as conn:
            rows = dict(conn.execute(select(cherry_patients.c.patient_id, cherry_patients.c.increase_eligible)).all())
        assert rows == {"p1": True, "p2": False}
    finally:
        dispose_engine(store_url)


def test_bookkeeping_is_idempotent_and_per_practice(smart_store):
    state = ContactTags("ct-1", "p1", frozenset({"cherry-patient"}), frozenset({"cherry-active"}))
    smart_store.save_contact_tags(SLUG, [state])
    smart_store.save_contact_tags(SLUG, [state])
    smart_store.save_contact_tags(OTHER, [ContactTags("ct-1", "q1", frozenset({"x"}))])

    assert smart_store.contact_tags(SLUG) == {"ct-1": state}
    assert smart_store.contact_tags(OTHER)["ct-1"].confirmed == {"x"}
    smart_store.save_contact_tags(SLUG, [ContactTags("ct-1", "p1")])
    assert smart_store.contact_tags(SLUG) == {}
    assert set(smart_store.contact_tags(OTHER)) == {"ct-1"}


def test_clear_written_hashes_and_verified_at(smart_store):
    patients = Patients(smart_store)
    patients.put("p1")
    patients.put("p2")
    assert smart_store.smart_list_verified_at(SLUG) is None

    assert smart_store.clear_written_hashes(SLUG, ["p1", "p1", "unknown"]) == 1
    states = smart_store.get_patient_states(SLUG, ["p1", "p2"])
    assert states["p1"].written_hash is None and states["p1"].crm_contact_id == "ct-p1"
    assert states["p2"].written_hash is not None
    smart_store.mark_smart_list_verified(SLUG, T0)
    smart_store.mark_smart_list_verified(SLUG, T0 + timedelta(hours=1))
    assert smart_store.smart_list_verified_at(SLUG) == T0 + timedelta(hours=1)
    assert smart_store.smart_list_verified_at(OTHER) is None


def test_unknown_segments_and_shared_tags_are_refused(smart_store):
    with pytest.raises(ValueError, match="unknown segments"):
        smart_store.smart_list_changes(SLUG, {"vip": "x"}, PLAN.threshold)
    with pytest.raises(ValueError, match="its own tag"):
        smart_store.smart_list_changes(SLUG, {"all": "x", "active": "x"}, PLAN.threshold)
