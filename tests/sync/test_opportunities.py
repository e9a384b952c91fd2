"""Cherry payments -> opportunities in the practice's pipeline, each payment state applied once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cherry_sync.domain import normalise_phone
from cherry_sync.sync.practice_runs import EVENTS_STREAM, backfill_practice, refresh_practice
from tests.sync.conftest import SyncEnv, new_payment, settle_payment, shared_contact_points

PAGE = 50
OPPORTUNITY = {"pipeline": "Patient Journey", "stage": "Financing"}
OPPORTUNITY_WRITES = ("POST /opportunities", "PUT /opportunities")


def _opportunity_writes(env: SyncEnv) -> dict[str, int]:
    return {ep: n for ep, n in env.crm_writes(0).items() if ep.startswith(OPPORTUNITY_WRITES)}


def _opportunities_by_contact(env: SyncEnv) -> dict[str, list[dict]]:
    state = env.crm_state(0)
    pipeline = next(p for p in state["pipelines"] if p["name"] == OPPORTUNITY["pipeline"])
    stage = next(s for s in pipeline["stages"] if s["name"] == OPPORTUNITY["stage"])
    found: dict[str, list[dict]] = {}
    for opp in state["opportunities"]:
        assert opp["pipelineId"] == pipeline["id"]
        assert opp["pipelineStageId"] == stage["id"]
        found.setdefault(opp["contactId"], []).append(opp)
    return found


def test_payment_states_drive_opportunities_once(sync_env: SyncEnv) -> None:
    env = sync_env
    slug = env.slug(0)
    practice_id = env.cherry.practices[0].id
    backfill_practice(env.make_ctx(0, opportunity=OPPORTUNITY), page_size=PAGE)
    assert env.crm_state(0)["counts"]["opportunities"] == 0  # the backfill never touches opportunities

    # New checkouts (events delivered twice here and there).
    env.cherry.advance(minutes=60, payments=8, duplicate_share=0.5, practice_id=practice_id)
    shared = shared_contact_points(env.cherry_patients(0))
    new_payments = [p for p in env.cherry.fetch_all("/v1/payments", 0) if p["created_at"] >= _iso(env, minutes_ago=60)]
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    states = env.store.get_patient_states(slug, [p["patient_id"] for p in new_payments])

    # One payment per patient (HighLevel keeps one opportunity per contact and pipeline), on contacts we own.
    per_patient: dict[str, list[dict]] = {}
    for p in new_payments:
        per_patient.setdefault(p["patient_id"], []).append(p)
    candidates = [
        pays[0]
        for pid, pays in per_patient.items()
        if len(pays) == 1 and states.get(pid) and states[pid].crm_contact_id and not _family(env, pid, shared)
    ]
    assert len(candidates) >= 4, "the seed should give four single-payment patients"
    refund, partial, cancel, kept = candidates[:4]
    contact_of = {p["id"]: states[p["patient_id"]].crm_contact_id for p in candidates}

    opportunities = _opportunities_by_contact(env)
    for payment in candidates:
        [opp] = opportunities[contact_of[payment["id"]]]
        assert opp["status"] == "won"
        assert Decimal(str(opp["monetaryValue"])) == Decimal(payment["amount"])
        assert opp["name"] == f"Cherry payment {payment['id']}"

    # Settle three of them at the source.
    refunded = settle_payment(env.cherry, refund["id"], "refund")
    partly = settle_payment(env.cherry, partial["id"], "partial")
    settle_payment(env.cherry, cancel["id"], "cancel")
    assert Decimal(partly["refund_amount"]) > 0 and refunded["status"] == "REFUNDED"
    cursor_before_settling = env.store.get_cursor(slug, EVENTS_STREAM)

    env.crm.reset_stats()
    summary = refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert summary.events.payments_applied == 3
    opportunities = _opportunities_by_contact(env)
    [lost] = opportunities[contact_of[refund["id"]]]
    [lowered] = opportunities[contact_of[partial["id"]]]
    [abandoned] = opportunities[contact_of[cancel["id"]]]
    [won] = opportunities[contact_of[kept["id"]]]
    assert lost["status"] == "lost"
    assert lowered["status"] == "won"
    assert Decimal(str(lowered["monetaryValue"])) == Decimal(partial["amount"]) - Decimal(partly["refund_amount"])
    assert abandoned["status"] == "abandoned"
    assert won["status"] == "won" and Decimal(str(won["monetaryValue"])) == Decimal(kept["amount"])
    # The contacts' payment fields follow too (Payment Amount = amount - refund).
    contacts = {c["id"]: c for c in env.contacts(0)}
    fields = {f["id"]: f["fieldKey"] for f in env.crm_state(0)["customFields"]}
    status_of = {fields[item["id"]]: item["value"] for item in contacts[contact_of[refund["id"]]]["customFields"]}
    assert status_of["contact.cherry_payment_status"] == "Refunded"
    assert status_of["contact.cherry_payment_amount"] == 0

    # Re-run: nothing new. Then replay the same events with the processed-event memory wiped: the stored
    # applied states still keep every payment state from being applied twice.
    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {}
    env.store.prune_processed_events(datetime.now(UTC) + timedelta(days=1))
    env.store.set_cursor(slug, EVENTS_STREAM, cursor_before_settling)
    replay = refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert replay.events.duplicates == 0 and replay.events.events > 0
    assert _opportunity_writes(env) == {}
    assert env.crm_writes(0) == {}
    assert _opportunities_by_contact(env) == opportunities


def _family(env: SyncEnv, patient_id: str, shared: set[str]) -> bool:
    """Whether the patient shares an e-mail or phone with another patient (see `shared_contact_points`)."""
    if "rows" not in env.cache:
        env.cache["rows"] = {r["id"]: r for r in env.cherry_patients(0)}
    row = env.cache["rows"][patient_id]
    return (row.get("email") or "").lower() in shared or normalise_phone(row.get("phone")) in shared


def _iso(env: SyncEnv, minutes_ago: int) -> str:
    now = datetime.fromisoformat(env.cherry.now().replace("Z", "+00:00"))
    return (now - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_settling_a_payment_never_applied_leaves_other_opportunities_alone(sync_env: SyncEnv) -> None:
    """A refund or cancellation of a payment that predates the sync (no opportunity was ever won for it)
    must not mark the contact's opportunity of another, newer payment lost or abandoned."""
    env = sync_env
    slug = env.slug(0)
    practice_id = env.cherry.practices[0].id
    history = {p["id"]: p for p in env.cherry.fetch_all("/v1/payments", 0)}
    backfill_practice(env.make_ctx(0, opportunity=OPPORTUNITY), page_size=PAGE)
    env.cherry.advance(minutes=60, payments=10, practice_id=practice_id)
    refresh_practice(env.make_ctx(0), page_size=PAGE)

    new = [p for p in env.cherry.fetch_all("/v1/payments", 0) if p["id"] not in history]
    states = env.store.get_patient_states(slug, [p["patient_id"] for p in new])
    old_completed = {}
    for p in history.values():
        if p["status"] == "COMPLETED":
            old_completed.setdefault(p["patient_id"], p)
    pairs = [
        (old_completed[p["patient_id"]], p)
        for p in new
        if p["patient_id"] in old_completed and states.get(p["patient_id"]) and states[p["patient_id"]].crm_contact_id
    ]
    assert len(pairs) >= 2, "the seed should give patients with an old and a new payment"
    (old_a, new_a), (old_b, new_b) = pairs[:2]
    settle_payment(env.cherry, old_a["id"], "refund")
    settle_payment(env.cherry, old_b["id"], "cancel")

    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert _opportunity_writes(env) == {}
    opportunities = _opportunities_by_contact(env)
    for fresh in (new_a, new_b):
        [opp] = opportunities[states[fresh["patient_id"]].crm_contact_id]
        assert opp["status"] == "won"
        assert opp["name"] == f"Cherry payment {fresh['id']}"


def test_an_older_payment_settling_leaves_the_newer_payments_opportunity(sync_env: SyncEnv) -> None:
    """One opportunity per contact and pipeline: once a newer payment took it over, settling the older
    payment must not mark it lost. In one refresh or across two, in either order within a page."""
    env = sync_env
    slug = env.slug(0)
    backfill_practice(env.make_ctx(0, opportunity=OPPORTUNITY), page_size=PAGE)
    shared = shared_contact_points(env.cherry_patients(0))
    rich = [
        r
        for r in env.cherry_patients(0, status="ACTIVE")
        if Decimal(r["balance_available"] or 0) >= 1000 and not _family(env, r["id"], shared)
    ]
    first, second = rich[:2]

    # Patient 1: P1 won, later P2 won on the same opportunity, then P1 refunded.
    p1 = new_payment(env.cherry, first["id"], "300.00")
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    p2 = new_payment(env.cherry, first["id"], "400.00")
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    # Patient 2: P3 won; then P4 completes and P3 is cancelled in the same refresh.
    p3 = new_payment(env.cherry, second["id"], "250.00")
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    p4 = new_payment(env.cherry, second["id"], "350.00")
    settle_payment(env.cherry, p1["id"], "refund")
    settle_payment(env.cherry, p3["id"], "cancel")
    refresh_practice(env.make_ctx(0), page_size=PAGE)

    states = env.store.get_patient_states(slug, [first["id"], second["id"]])
    opportunities = _opportunities_by_contact(env)
    [opp1] = opportunities[states[first["id"]].crm_contact_id]
    [opp2] = opportunities[states[second["id"]].crm_contact_id]
    assert opp1["status"] == "won" and Decimal(str(opp1["monetaryValue"])) == Decimal(p2["amount"])
    assert opp2["status"] == "won" and Decimal(str(opp2["monetaryValue"])) == Decimal(p4["amount"])
    applied = env.store.get_payments(slug, [p1["id"], p3["id"]])
    assert applied[p1["id"]].applied_status == "REFUNDED"
    assert applied[p3["id"]].applied_status == "CANCELLED"

    # The newest payment settling does act on it.
    settle_payment(env.cherry, p2["id"], "refund")
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    [opp1] = _opportunities_by_contact(env)[states[first["id"]].crm_contact_id]
    assert opp1["status"] == "lost"


# -- opportunities the store already knows: written without a search -------------------------------------

SEARCH = "GET /opportunities/search"


def _buyers(env: SyncEnv, n: int) -> list[dict]:
    """`n` active patients with a CRM contact of their own (no family sharing a point) and room to spend."""
    shared = shared_contact_points(env.cherry_patients(0))
    rows = [
        r
        for r in env.cherry_patients(0, status="ACTIVE")
        if Decimal(r["balance_available"] or 0) >= 1000 and not _family(env, r["id"], shared)
    ]
    states = env.store.get_patient_states(env.slug(0), [r["id"] for r in rows])
    chosen = [r for r in rows if states.get(r["id"]) and states[r["id"]].crm_contact_id]
    assert len(chosen) >= n, "the seed should give enough patients able to buy"
    return chosen[:n]


def _contact_of(env: SyncEnv, patient_id: str) -> str:
    return env.store.get_patient_states(env.slug(0), [patient_id])[patient_id].crm_contact_id


def test_known_opportunities_are_written_without_a_search(sync_env: SyncEnv) -> None:
    """Refunds, partial refunds and cancellations of a payment whose won opportunity the store recorded, and a
    patient's next payment, go straight to the opportunity: no `GET /opportunities/search`."""
    env = sync_env
    slug = env.slug(0)
    backfill_practice(env.make_ctx(0, opportunity=OPPORTUNITY), page_size=PAGE)
    refund, partial, cancel, repeat = _buyers(env, 4)
    first = {r["id"]: new_payment(env.cherry, r["id"], "300.00") for r in (refund, partial, cancel, repeat)}
    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    # Nothing known yet: is there an opportunity for each contact? One listing of the (small) pipeline answers
    # for the four contacts at once, instead of a search each; then a create each.
    assert env.endpoint_counts(0)[SEARCH] == 1
    assert _opportunity_writes(env) == {"POST /opportunities/": 4}
    recorded = {
        pid: state.crm_opportunity_id
        for pid, state in env.store.get_payments(slug, [p["id"] for p in first.values()]).items()
    }
    opportunity_of = {pid: recorded[p["id"]] for pid, p in first.items()}

    refunded = settle_payment(env.cherry, first[refund["id"]]["id"], "refund")
    partly = settle_payment(env.cherry, first[partial["id"]]["id"], "partial")
    settle_payment(env.cherry, first[cancel["id"]]["id"], "cancel")
    second = new_payment(env.cherry, repeat["id"], "450.00")
    assert refunded["status"] == "REFUNDED"

    env.crm.reset_stats()
    summary = refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert summary.events.payments_applied == 4
    assert env.endpoint_counts(0)[SEARCH] == 0
    # One write each: the status of the refunded and the cancelled one, the value of the partly refunded one and
    # of the repeat buyer's (already won, so no status write).
    assert _opportunity_writes(env) == {"PUT /opportunities/{id}/status": 2, "PUT /opportunities/{id}": 2}
    by_id = {o["id"]: o for opps in _opportunities_by_contact(env).values() for o in opps}
    assert by_id[opportunity_of[refund["id"]]]["status"] == "lost"
    assert by_id[opportunity_of[cancel["id"]]]["status"] == "abandoned"
    lowered = by_id[opportunity_of[partial["id"]]]
    assert Decimal(str(lowered["monetaryValue"])) == Decimal("300.00") - Decimal(partly["refund_amount"])
    repeated = by_id[opportunity_of[repeat["id"]]]
    assert repeated["status"] == "won" and Decimal(str(repeated["monetaryValue"])) == Decimal(second["amount"])
    assert env.store.get_payments(slug, [second["id"]])[second["id"]].crm_opportunity_id == repeated["id"]
    assert len(_opportunities_by_contact(env)[_contact_of(env, repeat["id"])]) == 1

    # A re-run with nothing new makes no CRM write and no search.
    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {}
    assert env.endpoint_counts(0)[SEARCH] == 0


def test_an_opportunity_deleted_in_the_crm_falls_back_to_the_search(sync_env: SyncEnv) -> None:
    """A direct write answered 404 (staff deleted the opportunity) searches as before: a refund then has nothing
    left to mark, and the patient's next payment gets a new opportunity, which later payments go straight to."""
    env = sync_env
    slug = env.slug(0)
    backfill_practice(env.make_ctx(0, opportunity=OPPORTUNITY), page_size=PAGE)
    refunder, buyer = _buyers(env, 2)
    paid = {r["id"]: new_payment(env.cherry, r["id"], "300.00") for r in (refunder, buyer)}
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    staff = env.crm.client(0)
    for payment in paid.values():
        opportunity_id = env.store.get_payments(slug, [payment["id"]])[payment["id"]].crm_opportunity_id
        staff.delete(f"/opportunities/{opportunity_id}").raise_for_status()
    assert env.crm_state(0)["counts"]["opportunities"] == 0

    settle_payment(env.cherry, paid[refunder["id"]]["id"], "refund")
    again = new_payment(env.cherry, buyer["id"], "200.00")
    env.crm.reset_stats()
    summary = refresh_practice(env.make_ctx(0), page_size=PAGE)

    assert summary.events.payments_applied == 2
    assert env.status_codes(0)["404"] == 2  # both direct writes
    assert env.endpoint_counts(0)[SEARCH] == 2  # ... then today's search, once each
    # The two direct writes answered 404, then the refund found nothing to mark and the payment created anew.
    assert _opportunity_writes(env) == {
        "PUT /opportunities/{id}/status": 1,
        "PUT /opportunities/{id}": 1,
        "POST /opportunities/": 1,
    }
    [created] = _opportunities_by_contact(env)[_contact_of(env, buyer["id"])]
    assert created["name"] == f"Cherry payment {again['id']}"
    assert created["status"] == "won" and Decimal(str(created["monetaryValue"])) == Decimal("200.00")
    assert _contact_of(env, refunder["id"]) not in _opportunities_by_contact(env)
    states = env.store.get_payments(slug, [paid[refunder["id"]]["id"], again["id"]])
    assert states[paid[refunder["id"]]["id"]].applied_status == "REFUNDED"
    assert states[again["id"]].crm_opportunity_id == created["id"]

    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert env.crm_writes(0) == {}

    # The new opportunity is known now: the next payment goes straight to it.
    third = new_payment(env.cherry, buyer["id"], "150.00")
    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert env.endpoint_counts(0)[SEARCH] == 0
    assert _opportunity_writes(env) == {"PUT /opportunities/{id}": 1}
    [same] = _opportunities_by_contact(env)[_contact_of(env, buyer["id"])]
    assert same["id"] == created["id"] and Decimal(str(same["monetaryValue"])) == Decimal(third["amount"])


def test_ids_recorded_for_another_pipeline_are_searched_again(sync_env: SyncEnv) -> None:
    """After the practice's pipeline changes, the opportunity ids recorded before point into the old pipeline:
    they are not written to. The next payment searches the new pipeline (and creates its opportunity there), a
    refund of an old payment leaves the old opportunity alone, and ids recorded from then on are used again."""
    env = sync_env
    slug = env.slug(0)
    backfill_practice(env.make_ctx(0, opportunity=OPPORTUNITY), page_size=PAGE)
    [buyer] = _buyers(env, 1)
    old = new_payment(env.cherry, buyer["id"], "300.00")
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    [old_opportunity] = _opportunities_by_contact(env)[_contact_of(env, buyer["id"])]

    env.crm.add_pipeline(env.location_id(0), "Cherry Financing", ["Applied", "Funded"])
    moved = {"pipeline": "Cherry Financing", "stage": "Funded"}
    settle_payment(env.cherry, old["id"], "refund")
    new = new_payment(env.cherry, buyer["id"], "250.00")
    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0, opportunity=moved), page_size=PAGE)

    assert env.endpoint_counts(0)[SEARCH] == 2  # nothing trusted: the refund and the payment search
    assert _opportunity_writes(env) == {"POST /opportunities/": 1}
    opportunities = [o for o in env.crm_state(0)["opportunities"] if o["contactId"] == _contact_of(env, buyer["id"])]
    by_id = {o["id"]: o for o in opportunities}
    assert by_id[old_opportunity["id"]]["status"] == "won"  # the old pipeline's is left as it was
    assert Decimal(str(by_id[old_opportunity["id"]]["monetaryValue"])) == Decimal("300.00")
    [created] = [o for o in opportunities if o["id"] != old_opportunity["id"]]
    assert created["pipelineId"] != old_opportunity["pipelineId"] and created["name"] == f"Cherry payment {new['id']}"

    later = new_payment(env.cherry, buyer["id"], "120.00")
    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert env.endpoint_counts(0)[SEARCH] == 0
    assert _opportunity_writes(env) == {"PUT /opportunities/{id}": 1}
    assert env.store.get_payments(slug, [later["id"]])[later["id"]].crm_opportunity_id == created["id"]


def test_a_large_pipeline_is_not_listed_for_a_few_contacts(sync_env: SyncEnv) -> None:
    """Listing the pipeline replaces per-contact searches only when it takes fewer pages than there are contacts:
    with 120 opportunities (2 pages) and 2 contacts to look up, the first page shows the size and each contact is
    searched instead."""
    env = sync_env
    backfill_practice(env.make_ctx(0, opportunity=OPPORTUNITY), page_size=PAGE)
    crm = env.make_ctx(0).crm
    pipeline = next(p for p in crm.list_pipelines() if p["name"] == OPPORTUNITY["pipeline"])
    for n in range(120):  # leads of the practice's own, each with an opportunity (one per contact and pipeline)
        lead, _ = crm.upsert_contact({"email": f"lead{n}@elsewhere.example", "firstName": "Lead"})
        crm.create_opportunity(
            {
                "pipelineId": pipeline["id"],
                "pipelineStageId": pipeline["stages"][0]["id"],
                "contactId": lead["id"],
                "name": f"elsewhere {n}",
                "status": "open",
            }
        )
    for buyer in _buyers(env, 2):
        new_payment(env.cherry, buyer["id"], "300.00")
    env.crm.reset_stats()
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    assert env.endpoint_counts(0)[SEARCH] == 1 + 2
    assert _opportunity_writes(env) == {"POST /opportunities/": 2}
