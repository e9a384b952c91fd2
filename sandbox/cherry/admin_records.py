"""Admin routes that change patients and payments through the sandbox's own write path (edits,
settlements) or damage and repair them (malformed records). Each write announces itself in the feed.

Every change first moves the sandbox clock on by one second, so the version it creates is strictly newer
(by updated_at) than the one before it.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from sandbox.cherry.data import settle_payment
from sandbox.cherry.errors import invalid, not_found
from sandbox.cherry.formats import epoch
from sandbox.cherry.lifecycle import EVENT_FOR_STATUS
from sandbox.cherry.malformed import PAYMENT_KINDS, MalformedKind, corrupt_record, repair_record
from sandbox.cherry.state import CherryState

router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])


def _state(request: Request) -> CherryState:
    return request.app.state.cherry


# -- edits through the sandbox's own write path ---------------------------------------------------
class PatientEdit(BaseModel):
    """Fields a test may change on a patient (status and money follow the lifecycle: use /advance)."""

    model_config = ConfigDict(extra="forbid")
    first_name: str | None = Field(None, min_length=1, max_length=200)
    last_name: str | None = Field(None, min_length=1, max_length=200)
    date_of_birth: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=254)
    location_id: str | None = None


class Settlement(BaseModel):
    """How to settle a COMPLETED payment."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["cancel", "refund", "partial"]


@router.patch("/patients/{patient_id}")
def edit_patient(request: Request, patient_id: str, body: PatientEdit) -> dict:
    """A new version of the patient with the given fields (explicit nulls clear phone/e-mail/birth date),
    announced by a patient.refreshed event. Returns only the id and the new updated_at."""
    state = _state(request)
    changes = body.model_dump(exclude_unset=True)
    with state.lock:
        book = state.find_patient_book(patient_id)
        if "location_id" in changes and changes["location_id"] not in {loc.id for loc in book.practice.locations}:
            raise invalid("location_id is not a location of this practice")
        for required in ("first_name", "last_name", "location_id"):
            if required in changes and changes[required] is None:
                raise invalid(f"{required} cannot be null")
        version = book.lives[patient_id].touch_at(state.tick(), **changes)
        book.write_patient(version)
        book.emit("patient.refreshed", version, version.updated_at)
        return {"id": patient_id, "updated_at": version.updated_at}


@router.post("/payments/{payment_id}/settle")
def settle(request: Request, payment_id: str, body: Settlement) -> dict:
    """Cancel, refund or partially refund a COMPLETED payment, as the simulator does (the patient's balance
    is restored and announced too). Returns the payment as now served."""
    state = _state(request)
    with state.lock:
        book = state.find_payment_book(payment_id)
        payment = book.payments.records[payment_id]
        if payment.status != "COMPLETED":
            raise invalid("only a COMPLETED payment can be settled")
        t = epoch(state.tick())
        changed, back = settle_payment(state.runtime_rng, payment, body.kind, t)
        book.write_payment(changed)
        book.emit(EVENT_FOR_STATUS[changed.status], changed, changed.updated_at)
        restored = book.lives[payment.patient_id].restore(t, back, payment.period)
        if restored is not None:
            book.write_patient(restored)
            book.emit("patient.refreshed", restored, restored.updated_at)
        return changed.to_json()


# -- malformed records -----------------------------------------------------------------------------
class Corruption(BaseModel):
    """Which record to corrupt, and how."""

    model_config = ConfigDict(extra="forbid")
    object_type: Literal["patient", "payment"] = "patient"
    id: str
    kind: MalformedKind


@router.get("/malformed")
def list_malformed(request: Request) -> list[dict]:
    state = _state(request)
    with state.lock:
        return [
            {"practice_id": pid, "object_type": object_type, "id": record_id, "kind": kind}
            for pid, book in state.books.items()
            for record_id, (object_type, kind) in book.malformed.items()
        ]


@router.post("/malformed", status_code=201)
def corrupt(request: Request, body: Corruption) -> dict:
    """Corrupt a record: a new version (updated_at = now) announced by an event, served malformed."""
    state = _state(request)
    if body.object_type == "payment" and body.kind not in PAYMENT_KINDS:
        raise invalid("this kind does not apply to payments")
    with state.lock:
        find = state.find_patient_book if body.object_type == "patient" else state.find_payment_book
        book = find(body.id)
        version = corrupt_record(book, body.object_type, body.id, body.kind, state.tick(), state.runtime_rng)
        return {
            "practice_id": book.practice.id,
            "object_type": body.object_type,
            "id": body.id,
            "kind": body.kind.value,
            "updated_at": version.updated_at,
        }


@router.delete("/malformed/{record_id}")
def repair(request: Request, record_id: str) -> dict:
    """Repair a corrupted record: a clean new version (updated_at = now) and a fresh event."""
    state = _state(request)
    with state.lock:
        for book in state.books.values():
            if record_id in book.malformed:
                object_type = book.malformed[record_id][0]
                version = repair_record(book, object_type, record_id, state.tick())
                return {
                    "practice_id": book.practice.id,
                    "object_type": object_type,
                    "id": record_id,
                    "updated_at": version.updated_at,
                }
    raise not_found("malformed record")
