"""Cherry payments (loans/contracts) and which of their states was last applied to the CRM.

Same newer-wins rule as patients: an older `source_updated_at` never overwrites a newer one (enforced in SQL).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select

from cherry_sync.store.base import StoreBase, chunked, newest_per
from cherry_sync.store.models import PaymentSnapshot, PaymentState
from cherry_sync.store.schema import payments

_STATE_COLUMNS = (
    payments.c.payment_id,
    payments.c.patient_id,
    payments.c.snapshot,
    payments.c.status,
    payments.c.amount,
    payments.c.refund_amount,
    payments.c.source_updated_at,
    payments.c.applied_status,
    payments.c.applied_at,
    payments.c.crm_opportunity_id,
)
_SNAPSHOT_COLUMNS = ("patient_id", "snapshot", "status", "amount", "refund_amount", "source_updated_at", "last_seen_at")


def _state(row) -> PaymentState:
    return PaymentState(**row._mapping)


class PaymentQueries(StoreBase):
    """Reads and writes `payments`, in batches."""

    def upsert_payments(self, slug: str, rows: Iterable[PaymentSnapshot]) -> set[str]:
        """Store the latest payment snapshots; return the payment ids applied (new or not older)."""
        newest = newest_per(rows, lambda row: row.payment_id)
        if not newest:
            return set()
        now = self._now()
        params = [
            {
                "practice_slug": slug,
                "payment_id": row.payment_id,
                "patient_id": row.patient_id,
                "snapshot": dict(row.snapshot),
                "status": row.status,
                "amount": row.amount,
                "refund_amount": row.refund_amount,
                "source_updated_at": row.source_updated_at,
                "first_seen_at": now,
                "last_seen_at": now,
            }
            for row in newest.values()
        ]
        return self._upsert_newer_wins(payments, "payment_id", slug, params, _SNAPSHOT_COLUMNS)

    def mark_payment_applied(self, slug: str, applied: Iterable[tuple[str, str, str | None]]) -> int:
        """Record CRM updates as (payment_id, applied_status, crm_opportunity_id or None); returns rows updated.

        A None opportunity id keeps the one stored (a status-only update does not forget the opportunity).
        """
        rows = {
            payment_id: {"payment_id": payment_id, "applied_status": status, "crm_opportunity_id": opportunity_id}
            for payment_id, status, opportunity_id in applied
        }
        if not rows:
            return 0
        now = self._now()
        with self.engine.begin() as conn:
            return self._update_many(
                conn,
                payments,
                slug,
                "payment_id",
                list(rows.values()),
                lambda incoming: {
                    "applied_status": incoming("applied_status"),
                    "applied_at": now,
                    "crm_opportunity_id": func.coalesce(incoming("crm_opportunity_id"), payments.c.crm_opportunity_id),
                },
            )

    def get_payments(self, slug: str, payment_ids: Iterable[str]) -> dict[str, PaymentState]:
        """The stored state of each known payment among `payment_ids`."""
        states: dict[str, PaymentState] = {}
        with self.engine.begin() as conn:
            for batch in chunked(dict.fromkeys(payment_ids)):
                query = select(*_STATE_COLUMNS).where(
                    payments.c.practice_slug == slug, payments.c.payment_id.in_(batch)
                )
                states.update((row.payment_id, _state(row)) for row in conn.execute(query))
        return states

    def get_patient_payments(self, slug: str, patient_id: str) -> list[PaymentState]:
        """All stored payments of one patient, oldest first."""
        query = (
            select(*_STATE_COLUMNS)
            .where(payments.c.practice_slug == slug, payments.c.patient_id == patient_id)
            .order_by(payments.c.source_updated_at, payments.c.payment_id)
        )
        with self.engine.begin() as conn:
            return [_state(row) for row in conn.execute(query)]

    def get_payments_by_patient(self, slug: str, patient_ids: Iterable[str]) -> dict[str, list[PaymentState]]:
        """Stored payments of many patients at once: {patient_id: payments, oldest first}."""
        found: dict[str, list[PaymentState]] = {}
        with self.engine.begin() as conn:
            for batch in chunked(dict.fromkeys(patient_ids)):
                query = (
                    select(*_STATE_COLUMNS)
                    .where(payments.c.practice_slug == slug, payments.c.patient_id.in_(batch))
                    .order_by(payments.c.source_updated_at, payments.c.payment_id)
                )
                for row in conn.execute(query):
                    found.setdefault(row.patient_id, []).append(_state(row))
        return found

    def get_opportunity_ids(
        self, slug: str, patient_ids: Iterable[str], *, applied_status: str, applied_since: datetime
    ) -> dict[str, str]:
        """The opportunity each patient's payments touched last: {patient_id: the `crm_opportunity_id` of the
        payment whose `applied_status` is `applied_status`, applied most recently at or after `applied_since`}.
        Patients with none are left out."""
        found: dict[str, str] = {}
        with self.engine.begin() as conn:
            for batch in chunked(dict.fromkeys(patient_ids)):
                query = (
                    select(payments.c.patient_id, payments.c.crm_opportunity_id)
                    .where(
                        payments.c.practice_slug == slug,
                        payments.c.patient_id.in_(batch),
                        payments.c.crm_opportunity_id.is_not(None),
                        payments.c.applied_status == applied_status,
                        payments.c.applied_at >= applied_since,
                    )
                    .order_by(payments.c.applied_at, payments.c.payment_id)
                )
                found.update((row.patient_id, row.crm_opportunity_id) for row in conn.execute(query))
        return found
