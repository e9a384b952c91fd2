"""Over months of Cherry activity, every Cherry field of every contact says what Cherry says now, down to empty.

Judged from the outside by `sandbox.audit`: Cherry's patients and payments as the Cherry API serves them, the
contacts as the CRM holds them, compared with what the written rules (docs/field-mapping.md, section 3) give for
Cherry's current record, computed independently of the sync's own mapping code.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cherry_sync.domain import custom_fields as cf
from cherry_sync.sync.practice_runs import backfill_practice, refresh_practice
from sandbox.audit import audit, contact_fields
from tests.sync.conftest import SyncEnv

PAGE = 50
MONTH = 60 * 24 * 30


def mismatches(env: SyncEnv, index: int = 0) -> tuple[list[str], int]:
    """Fields that disagree with Cherry (as 'patient-id field' lines, no values), and the contacts checked."""
    state = env.crm_state(index)
    result = audit(
        patients=env.cherry_patients(index),
        payments=env.cherry.fetch_all("/v1/payments", index),
        contacts=state["contacts"],
        custom_fields=state["customFields"],
        contact_of={
            s.patient_id: s.crm_contact_id for s in env.store.iter_patient_states(env.slug(index)) if s.crm_contact_id
        },
        zone=env.practices[index].timezone,
    )
    return [f"{pid} {key}" for pid, key in result.wrong], result.checked


def cleared_balances(env: SyncEnv, index: int = 0) -> int:
    """Contacts whose Cherry patient has no balance (the values that went stale before clearing existed)."""
    patients = {p["id"]: p for p in env.cherry_patients(index)}
    return sum(
        1
        for s in env.store.iter_patient_states(env.slug(index))
        if s.crm_contact_id and patients[s.patient_id]["balance_available"] is None
    )


def test_months_of_activity_leave_no_stale_cherry_value(sync_env: SyncEnv) -> None:
    env = sync_env
    practice = env.cherry.practices[0]
    backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    wrong, checked = mismatches(env)
    assert checked > 40 and wrong == []

    cleared = 0
    for _ in range(9):  # nine months, a refresh after each
        env.cherry.advance(
            minutes=MONTH,
            new_patients=2,
            refreshed=10,
            payments=4,
            refunds=1,
            cancellations=1,
            deactivations=2,
            duplicate_share=0.2,
            out_of_order_share=0.2,
            practice_id=practice.id,
        )
        summary = refresh_practice(env.make_ctx(0), page_size=PAGE)
        cleared += summary.patients.values_cleared
    wrong, checked = mismatches(env)
    assert wrong == [], f"{len(wrong)} Cherry values in the CRM disagree with Cherry: {wrong[:10]}"
    assert cleared > 0, "accounts lost their balance over the period: their CRM values must have been cleared"
    assert cleared_balances(env) > 0

    # Nothing changed at the source: neither a refresh nor a backfill writes anything.
    env.crm.reset_stats()
    assert refresh_practice(env.make_ctx(0), page_size=PAGE).patients.values_cleared == 0
    backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    assert sum(env.crm_writes(0).values()) == 0


def test_a_backfill_corrects_contacts_written_before_clearing_existed(sync_env: SyncEnv) -> None:
    """A contact synced by the old rule (Cherry's null left the CRM value alone) is emptied by the next backfill."""
    env = sync_env
    backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    state = env.crm_state(0)
    ids = {f.get("fieldKey"): f["id"] for f in state["customFields"]}
    patients = {p["id"]: p for p in env.cherry_patients(0)}
    stale = [
        s
        for s in env.store.iter_patient_states(env.slug(0))
        if s.crm_contact_id and patients[s.patient_id]["balance_available"] is None
    ][:3]
    assert len(stale) == 3
    old_rule_writes = []
    for s in stale:
        # What the old rule left behind: an old balance beside "Inactive", and a hash of the old version.
        env.crm.client(0).put(
            f"/contacts/{s.crm_contact_id}",
            json={
                "customFields": [
                    {"id": ids[cf.ACCOUNT_BALANCE], "field_value": 4190.0},
                    {"id": ids[cf.BALANCE_STATUS], "field_value": "Available"},
                ]
            },
        ).raise_for_status()
        old_rule_writes.append((s.patient_id, s.crm_contact_id, "hash-of-an-older-mapping"))
    env.store.mark_written(env.slug(0), old_rule_writes)
    assert len(mismatches(env)[0]) == 6

    env.crm.reset_stats()
    summary = backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    assert mismatches(env)[0] == []
    assert summary.patients.values_cleared == 6 and summary.patients.updated == 3
    assert env.crm_writes(0) == {"PUT /contacts/{contactId}": 3}


def test_refund_of_an_older_payment_leaves_the_payment_fields_on_the_latest(sync_env: SyncEnv) -> None:
    """The three payment fields always describe one payment, the latest by creation: a refund or cancellation of
    an older one changes the balance Cherry restores, not them (docs/field-mapping.md, section 3.4)."""
    from tests.sync.conftest import new_payment, settle_payment

    env = sync_env
    backfill_practice(env.make_ctx(0), scope="all", page_size=PAGE)
    patient = next(
        p
        for p in env.cherry_patients(0)
        if p["account_status"] == "ACTIVE" and Decimal(p["balance_available"] or "0") >= 1000
    )
    older = new_payment(env.cherry, patient["id"], amount="300.00", seed=1)
    latest = new_payment(env.cherry, patient["id"], amount="200.00", seed=2)
    refresh_practice(env.make_ctx(0), page_size=PAGE)
    contact_id = env.store.get_patient_states(env.slug(0), [patient["id"]])[patient["id"]].crm_contact_id

    def fields() -> dict[str, Any]:
        state = env.crm_state(0)
        keys = {f["id"]: f.get("fieldKey") for f in state["customFields"]}
        return contact_fields(next(c for c in state["contacts"] if c["id"] == contact_id), keys)

    before = fields()
    assert before[cf.PAYMENT_STATUS] == "Completed" and before[cf.PAYMENT_AMOUNT] == Decimal("200.00")
    assert before[cf.INVOICE_NUMBER] == latest["invoice_number"]

    for kind in ("refund", "cancel"):
        target = older if kind == "refund" else new_payment(env.cherry, patient["id"], amount="100.00", seed=3)
        if kind == "cancel":
            # A payment made before the latest one: move the latest on so the cancelled one is older.
            latest = new_payment(env.cherry, patient["id"], amount="50.00", seed=4)
        refresh_practice(env.make_ctx(0), page_size=PAGE)
        expected = fields()
        settle_payment(env.cherry, target["id"], kind)
        refresh_practice(env.make_ctx(0), page_size=PAGE)
        after = fields()
        for key in (cf.LAST_PAYMENT_DATE, cf.PAYMENT_STATUS, cf.PAYMENT_AMOUNT, cf.INVOICE_NUMBER):
            assert after[key] == expected[key], key
        assert after[cf.PAYMENT_STATUS] == "Completed"
        assert after[cf.INVOICE_NUMBER] == latest["invoice_number"]
        assert after[cf.ACCOUNT_BALANCE] > expected[cf.ACCOUNT_BALANCE], "Cherry restored the balance"
    assert mismatches(env)[0] == []
