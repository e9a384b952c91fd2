"""Cherry patient snapshots and what was last written for each to the CRM.

Newer wins: a snapshot replaces the stored one only when its `source_updated_at` is not older. The rule lives in
the SQL (a WHERE on the ON CONFLICT update), so two tasks racing with different reads of the same patient
cannot roll it back, whatever order they commit in. An equal timestamp is re-applied (same version; idempotent).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import func, select

from cherry_sync.store.base import BATCH_SIZE, StoreBase, chunked, newest_per
from cherry_sync.store.models import PatientSnapshot, PatientState
from cherry_sync.store.schema import cherry_patients as patients

_STATE_COLUMNS = (
    patients.c.patient_id,
    patients.c.snapshot,
    patients.c.account_status,
    patients.c.balance_available,
    patients.c.source_updated_at,
    patients.c.crm_contact_id,
    patients.c.written_hash,
    patients.c.written_at,
    patients.c.first_seen_at,
    patients.c.last_seen_at,
    patients.c.written_contact,
)
_SNAPSHOT_COLUMNS = (
    "snapshot",
    "account_status",
    "balance_available",
    "increase_eligible",
    "source_updated_at",
    "last_seen_at",
)


def _state(row) -> PatientState:
    return PatientState(**row._mapping)


def _flag(value: object) -> bool | None:
    # Mirrored into its own column for set-based segment queries (smart lists); anything but a bool is unknown.
    return value if isinstance(value, bool) else None


class PatientQueries(StoreBase):
    """Reads and writes `cherry_patients`, in batches."""

    def upsert_patient_snapshots(self, slug: str, rows: Iterable[PatientSnapshot]) -> set[str]:
        """Store the latest snapshots; return the patient ids whose snapshot was applied (new or not older).

        A stale snapshot (older than the stored one) changes nothing but `last_seen_at`.
        """
        newest = newest_per(rows, lambda row: row.patient_id)
        if not newest:
            return set()
        now = self._now()
        params = [
            {
                "practice_slug": slug,
                "patient_id": row.patient_id,
                "snapshot": dict(row.snapshot),
                "account_status": row.account_status,
                "balance_available": row.balance_available,
                "increase_eligible": _flag(row.snapshot.get("increase_eligible")),
                "source_updated_at": row.source_updated_at,
                "first_seen_at": now,
                "last_seen_at": now,
            }
            for row in newest.values()
        ]
        return self._upsert_newer_wins(patients, "patient_id", slug, params, _SNAPSHOT_COLUMNS)

    def get_patient_states(self, slug: str, patient_ids: Iterable[str]) -> dict[str, PatientState]:
        """The stored state of each known patient among `patient_ids` (unknown ids are simply absent)."""
        states: dict[str, PatientState] = {}
        with self.engine.begin() as conn:
            for batch in chunked(dict.fromkeys(patient_ids)):
                query = select(*_STATE_COLUMNS).where(
                    patients.c.practice_slug == slug, patients.c.patient_id.in_(batch)
                )
                states.update((row.patient_id, _state(row)) for row in conn.execute(query))
        return states

    def mark_written(self, slug: str, written: Iterable[tuple]) -> int:
        """Record CRM writes as (patient_id, crm_contact_id, written_hash[, written_contact]); returns the rows
        updated. `written_contact` is what the contact holds after the write (None: not known)."""
        # Last entry per patient wins; one statement must not update a row twice.
        rows = {
            entry[0]: {
                "patient_id": entry[0],
                "crm_contact_id": entry[1],
                "written_hash": entry[2],
                "written_contact": entry[3] if len(entry) > 3 else None,
            }
            for entry in written
        }
        if not rows:
            return 0
        now = self._now()
        with self.engine.begin() as conn:
            return self._update_many(
                conn,
                patients,
                slug,
                "patient_id",
                list(rows.values()),
                lambda incoming: {
                    "crm_contact_id": incoming("crm_contact_id"),
                    "written_hash": incoming("written_hash"),
                    "written_contact": incoming("written_contact"),
                    "written_at": now,
                },
            )

    def find_patient_by_contact(self, slug: str, crm_contact_id: str) -> PatientState | None:
        """The patient last written to this CRM contact (the most recently updated one, if several were)."""
        query = (
            select(*_STATE_COLUMNS)
            .where(patients.c.practice_slug == slug, patients.c.crm_contact_id == crm_contact_id)
            .order_by(patients.c.source_updated_at.desc(), patients.c.patient_id)
            .limit(1)
        )
        with self.engine.begin() as conn:
            row = conn.execute(query).first()
        return _state(row) if row else None

    def iter_patient_states(self, slug: str, *, batch_size: int = BATCH_SIZE) -> Iterator[PatientState]:
        """Every stored patient of a practice, in patient id order.

        Pages by key with a short transaction each, so a long walk (a refresh, a report) never holds a lock or a
        server-side cursor across a million rows.
        """
        after: str | None = None
        while True:
            query = select(*_STATE_COLUMNS).where(patients.c.practice_slug == slug)
            if after is not None:
                query = query.where(patients.c.patient_id > after)
            query = query.order_by(patients.c.patient_id).limit(batch_size)
            with self.engine.begin() as conn:
                page: Sequence = conn.execute(query).all()
            for row in page:
                yield _state(row)
            if len(page) < batch_size:
                return
            after = page[-1].patient_id

    def count_patients(self, slug: str) -> int:
        with self.engine.begin() as conn:
            return conn.execute(
                select(func.count()).select_from(patients).where(patients.c.practice_slug == slug)
            ).scalar_one()
