"""Queries for: Smart-list membership pushed to the CRM.

Membership and segments are computed in SQL from `cherry_patients`, per practice, in one statement that also
diffs them against what was pushed (`smart_list_contacts`): the database returns only the contacts whose tags
must change, so an unchanged practice costs one indexed pass over its own rows and transfers nothing.

A member is a stored patient with a CRM contact id. The segments are those of `smart_list.segments`, whose rules
are compiled to SQL here over the member's stored fields (`MEMBER_COLUMNS`). `increase_eligible` is read from the
column the patient upsert mirrors the snapshot's flag into (parsing JSON costs ~3 us a row on PostgreSQL's `json`
type, a third of the whole computation), falling back to the JSON element for a row where the column is NULL.
A contact shared by several patients gets the union of their segments.

Tag sets are stored as text in one canonical form: each tag followed by a comma, sorted by tag ("a,b,").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    and_,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)

from cherry_sync.smart_list.segments import SEGMENT_RULES, SEGMENTS
from cherry_sync.store.base import StoreBase, chunked
from cherry_sync.store.schema import cherry_patients as patients
from cherry_sync.store.schema_smart_list import smart_list_contacts as sent_table
from cherry_sync.store.schema_smart_list import smart_list_state as state_table

# The member's fields the segment rules read, as SQL over `cherry_patients`.
MEMBER_COLUMNS: Mapping[str, ColumnElement] = {
    "account_status": patients.c.account_status,
    "balance_available": patients.c.balance_available,
    # The mirrored column; the snapshot only for a row no writer has filled it on (COALESCE stops early).
    "increase_eligible": func.coalesce(
        patients.c.increase_eligible, patients.c.snapshot["increase_eligible"].as_boolean()
    ),
}


def tag_text(tags: Iterable[str]) -> str:
    """The canonical text form of a tag set ("" for none)."""
    return "".join(f"{tag}," for tag in sorted(set(tags)))


@lru_cache(maxsize=4096)
def tag_set(text: str | None) -> frozenset[str]:
    """A tag set from its canonical text form (None and "" are empty). Cached: a practice has few distinct sets."""
    return frozenset(part for part in (text or "").split(",") if part)


class ContactTags(NamedTuple):
    """What the product has applied to one contact: tags the CRM confirmed, and tags sent without an answer."""

    contact_id: str
    patient_id: str
    confirmed: frozenset[str] = frozenset()
    pending: frozenset[str] = frozenset()


class ContactChange(NamedTuple):
    """A contact whose tags must change: what membership wants there, and what the product applied so far."""

    contact_id: str
    patient_id: str
    wanted: frozenset[str]
    confirmed: frozenset[str]
    pending: frozenset[str]

    @property
    def to_add(self) -> frozenset[str]:
        """Wanted but not confirmed (pending ones are sent again: adding a tag is idempotent)."""
        return self.wanted - self.confirmed

    @property
    def to_remove(self) -> frozenset[str]:
        """Applied (or maybe applied) and no longer wanted, including tags the practice has since renamed."""
        return (self.confirmed | self.pending) - self.wanted

    @property
    def applied(self) -> ContactTags:
        return ContactTags(self.contact_id, self.patient_id, self.confirmed, self.pending)


@dataclass(frozen=True, slots=True)
class MemberRow:
    """One member (patient with a CRM contact) and the segments it is in, for exports and tests."""

    patient_id: str
    contact_id: str
    segments: frozenset[str]


@dataclass(frozen=True, slots=True)
class MemberFields:
    """What the store says a member's Account Status and Active Balance fields should be based on."""

    patient_id: str
    contact_id: str
    account_status: str | None
    balance_available: Decimal | None


def segment_conditions(threshold: Decimal) -> dict[str, ColumnElement[bool]]:
    """SQL condition per segment on `cherry_patients` rows of members (never NULL), from the segments' rules."""
    return {name: rule.sql(MEMBER_COLUMNS, threshold) for name, rule in SEGMENT_RULES.items()}


def _check_tags(tags: Mapping[str, str]) -> None:
    unknown = set(tags) - set(SEGMENTS)
    if unknown:
        raise ValueError(f"unknown segments {sorted(unknown)}; segments are {SEGMENTS}")
    if len(set(tags.values())) != len(tags):
        raise ValueError("each segment needs its own tag")
    if any("," in tag or not tag for tag in tags.values()):
        raise ValueError("a tag must be non-empty and without commas")


def _members(slug: str):
    return and_(patients.c.practice_slug == slug, patients.c.crm_contact_id.is_not(None))


class SmartListQueries(StoreBase):
    """Smart-list membership pushed to the CRM: reads and writes, in batches."""

    # -- membership (computed) ------------------------------------------------------------------

    def smart_list_changes(self, slug: str, tags: Mapping[str, str], threshold: Decimal) -> list[ContactChange]:
        """Contacts whose applied tags differ from the computed membership, in contact id order.

        `tags` maps segment name -> CRM tag (the practice's registry options). A contact comes back when it is a
        new member, no longer a member, wanted tags differ from confirmed ones, or some of its tags are pending.
        """
        _check_tags(tags)
        conditions = segment_conditions(threshold)
        # Per contact, the wanted tags as canonical text: one piece per tag in sorted order, present when any
        # patient on the contact is in that segment.
        pieces = [
            literal(f"{tag},", String)
            if name == "all"
            else case((func.max(case((conditions[name], 1), else_=0)) == 1, literal(f"{tag},", String)), else_="")
            for tag, name in sorted((tag, name) for name, tag in tags.items())
        ]
        wanted_text = pieces[0]
        for piece in pieces[1:]:
            wanted_text = wanted_text + piece
        wanted = (
            select(
                patients.c.crm_contact_id.label("contact_id"),
                func.min(patients.c.patient_id).label("patient_id"),
                wanted_text.label("tags"),
            )
            .where(_members(slug))
            .group_by(patients.c.crm_contact_id)
            .subquery("wanted")
        )
        sent = (
            select(sent_table.c.contact_id, sent_table.c.patient_id, sent_table.c.tags, sent_table.c.pending)
            .where(sent_table.c.practice_slug == slug)
            .subquery("sent")
        )
        # A full join is planned as a hash or merge join on both backends: one pass over each side.
        query = (
            select(
                wanted.c.contact_id,
                wanted.c.patient_id,
                wanted.c.tags,
                sent.c.contact_id.label("sent_contact_id"),
                sent.c.patient_id.label("sent_patient_id"),
                sent.c.tags.label("sent_tags"),
                sent.c.pending,
            )
            .select_from(wanted.join(sent, wanted.c.contact_id == sent.c.contact_id, full=True))
            .where(
                or_(
                    wanted.c.contact_id.is_(None),
                    sent.c.contact_id.is_(None),
                    sent.c.pending.is_not(None),
                    wanted.c.tags != sent.c.tags,
                )
            )
        )
        changes = []
        with self.engine.begin() as conn:
            self._tune(conn)
            for contact_id, patient_id, wanted_tags, sent_contact, sent_patient, sent_tags, pending in conn.execute(
                query
            ):
                changes.append(
                    ContactChange(
                        contact_id or sent_contact,
                        patient_id or sent_patient,
                        tag_set(wanted_tags),
                        tag_set(sent_tags),
                        tag_set(pending),
                    )
                )
        changes.sort()
        return changes

    def smart_list_counts(self, slug: str, threshold: Decimal) -> dict[str, int]:
        """Members (synced Cherry patients) per segment."""
        conditions = segment_conditions(threshold)
        query = select(
            *(func.coalesce(func.sum(case((conditions[name], 1), else_=0)), 0).label(name) for name in SEGMENTS)
        ).where(_members(slug))
        with self.engine.begin() as conn:
            self._tune(conn)
            row = conn.execute(query).one()
        return {name: int(row._mapping[name]) for name in SEGMENTS}

    def smart_list_members(self, slug: str, threshold: Decimal) -> list[MemberRow]:
        """Every member with its segments, in patient id order (exports, tests)."""
        conditions = segment_conditions(threshold)
        query = (
            select(
                patients.c.patient_id,
                patients.c.crm_contact_id,
                *(conditions[name].label(f"in_{name}") for name in SEGMENTS),
            )
            .where(_members(slug))
            .order_by(patients.c.patient_id)
        )
        with self.engine.begin() as conn:
            return [
                MemberRow(row[0], row[1], frozenset(name for name, flag in zip(SEGMENTS, row[2:], strict=True) if flag))
                for row in conn.execute(query)
            ]

    def member_field_values(self, slug: str) -> list[MemberFields]:
        """Per member, the stored account status and balance (what the CRM's fields should show)."""
        query = (
            select(
                patients.c.patient_id,
                patients.c.crm_contact_id,
                patients.c.account_status,
                patients.c.balance_available,
            )
            .where(_members(slug))
            .order_by(patients.c.patient_id)
        )
        with self.engine.begin() as conn:
            return [MemberFields(*row) for row in conn.execute(query)]

    def clear_written_hashes(self, slug: str, patient_ids: Iterable[str]) -> int:
        """Forget what was last written for these patients, so the next sync writes them again; returns rows."""
        cleared = 0
        with self.engine.begin() as conn:
            for batch in chunked(dict.fromkeys(patient_ids)):
                cleared += conn.execute(
                    update(patients)
                    .where(patients.c.practice_slug == slug, patients.c.patient_id.in_(batch))
                    .values(written_hash=None)
                ).rowcount
        return cleared

    # -- what was applied -----------------------------------------------------------------------

    def save_contact_tags(self, slug: str, states: Iterable[ContactTags]) -> int:
        """Record what the product has applied to these contacts (the whole state of each; idempotent).

        A contact left with no confirmed and no pending tag is forgotten. Returns the contacts written.
        """
        now = self._now()
        latest = {state.contact_id: state for state in states}
        keep = [
            {
                "practice_slug": slug,
                "contact_id": state.contact_id,
                "patient_id": state.patient_id,
                "tags": tag_text(state.confirmed),
                "pending": tag_text(state.pending) or None,
                "updated_at": now,
            }
            for state in latest.values()
            if state.confirmed or state.pending
        ]
        drop = [state.contact_id for state in latest.values() if not (state.confirmed or state.pending)]
        ins = self._insert(sent_table)
        # RETURNING makes SQLAlchemy send each batch as one multi-row INSERT ("insertmanyvalues") instead of
        # psycopg2's row-by-row executemany: about 4x faster on PostgreSQL.
        upsert = ins.on_conflict_do_update(
            index_elements=[sent_table.c.practice_slug, sent_table.c.contact_id],
            set_={name: ins.excluded[name] for name in ("patient_id", "tags", "pending", "updated_at")},
        ).returning(sent_table.c.contact_id)
        with self.engine.begin() as conn:
            for batch in chunked(keep):
                conn.execute(upsert, batch).all()
            for batch in chunked(drop):
                conn.execute(
                    delete(sent_table).where(sent_table.c.practice_slug == slug, sent_table.c.contact_id.in_(batch))
                )
        return len(latest)

    def contact_tags(self, slug: str) -> dict[str, ContactTags]:
        """Every contact the product has applied tags to, with those tags."""
        query = select(sent_table.c.contact_id, sent_table.c.patient_id, sent_table.c.tags, sent_table.c.pending).where(
            sent_table.c.practice_slug == slug
        )
        with self.engine.begin() as conn:
            return {
                contact_id: ContactTags(contact_id, patient_id, tag_set(tags), tag_set(pending))
                for contact_id, patient_id, tags, pending in conn.execute(query)
            }

    # -- per-practice state ---------------------------------------------------------------------

    def smart_list_verified_at(self, slug: str) -> datetime | None:
        """When the practice's CRM fields and tags were last verified against the store (None: never)."""
        with self.engine.begin() as conn:
            return conn.execute(
                select(state_table.c.verified_at).where(state_table.c.practice_slug == slug)
            ).scalar_one_or_none()

    def mark_smart_list_verified(self, slug: str, at: datetime | None = None) -> None:
        now = self._now()
        ins = self._insert(state_table).values(practice_slug=slug, verified_at=at or now, updated_at=now)
        with self.engine.begin() as conn:
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=[state_table.c.practice_slug],
                    set_={"verified_at": ins.excluded.verified_at, "updated_at": ins.excluded.updated_at},
                )
            )

    @staticmethod
    def _tune(conn: Connection) -> None:
        # PostgreSQL prices these per-practice statements high enough to JIT-compile them, which costs more
        # (~25 ms) than the whole query then saves. Transaction-scoped.
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL jit = off")
