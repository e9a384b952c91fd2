"""Cherry-specific admin routes under /_sandbox: practices and keys, the clock (advance, reset), and raw
dumps for tests. No auth; the shared middleware lets /_sandbox bypass faults and rate limits. Record edits
and malformed records live in admin_records.py, the asset library in admin_assets.py. Responses never carry
more patient data than the dumps that exist for that purpose.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from sandbox.cherry.errors import not_found
from sandbox.cherry.simulate import AdvanceRequest, advance
from sandbox.cherry.state import CherryState

router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])


def _state(request: Request) -> CherryState:
    return request.app.state.cherry


# -- practices and keys ----------------------------------------------------------------------------
@router.get("/practices")
def list_practices(request: Request) -> list[dict]:
    """Practices with their (non-secret) sandbox API keys and sizes."""
    state = _state(request)
    with state.lock:
        return [
            {
                **book.practice.to_json(),
                "api_keys": [k.to_json() for k in state.keys.values() if k.practice_id == book.practice.id],
                "patients": len(book.lives),
                "payments": len(book.payments),
                "events": len(book.events),
            }
            for book in state.books.values()
        ]


class NewKey(BaseModel):
    """A key to create for a practice."""

    model_config = ConfigDict(extra="forbid")
    practice_id: str
    activated: bool = True
    name: str = Field("sandbox", max_length=100)


class KeyChange(BaseModel):
    """Activate / deactivate or revoke a key."""

    model_config = ConfigDict(extra="forbid")
    activated: bool | None = None
    revoked: bool | None = None


@router.post("/keys", status_code=201)
def create_key(request: Request, body: NewKey) -> dict:
    state = _state(request)
    with state.lock:
        return state.create_key(body.practice_id, body.activated, body.name).to_json()


@router.put("/keys/{api_key}")
def change_key(request: Request, api_key: str, body: KeyChange) -> dict:
    state = _state(request)
    with state.lock:
        key = state.keys.get(api_key)
        if key is None:
            raise not_found("key")
        if body.activated is not None:
            key.activated = body.activated
        if body.revoked is not None:
            key.revoked = body.revoked
        return key.to_json()


# -- clock -----------------------------------------------------------------------------------------
@router.get("/clock")
def get_clock(request: Request) -> dict:
    state = _state(request)
    with state.lock:
        return {"now": state.now(), "offset_seconds": state.offset_seconds, "advances": state.advances}


@router.post("/advance")
def post_advance(request: Request, body: AdvanceRequest) -> dict:
    """Move the clock and simulate activity; returns counts per practice."""
    return advance(_state(request), body)


@router.post("/reset")
def reset(request: Request) -> dict:
    """Throw away every change and start again from the seed (same config)."""
    old = _state(request)
    old.webhooks.stop()  # subscriptions go with the data they followed
    request.app.state.cherry = CherryState(old.config)
    return {"now": request.app.state.cherry.now()}


# -- raw dumps (tests recompute reports from these) ------------------------------------------------
@router.get("/practices/{practice_id}/patients")
def dump_patients(request: Request, practice_id: str) -> list[dict]:
    """Every patient as currently served (malformed ones included), in paging order."""
    state = _state(request)
    with state.lock:
        return [v.to_json() | {"_id": v.id} for v in state.book(practice_id).patients.values()]


@router.get("/patients/{practice_id}", include_in_schema=False)
def dump_patients_alias(request: Request, practice_id: str) -> list[dict]:
    return dump_patients(request, practice_id)


@router.get("/practices/{practice_id}/payments")
def dump_payments(request: Request, practice_id: str) -> list[dict]:
    state = _state(request)
    with state.lock:
        return [
            p.to_json() | {"_id": p.id, "_settled_at": p.settled_at} for p in state.book(practice_id).payments.values()
        ]


@router.get("/practices/{practice_id}/applications")
def dump_applications(request: Request, practice_id: str) -> list[dict]:
    """Applications (never served on /v1): the inputs of the metrics report."""
    state = _state(request)
    with state.lock:
        return [app.to_json() for app in state.book(practice_id).applications]


@router.get("/practices/{practice_id}/plans")
def dump_plans(request: Request, practice_id: str) -> list[dict]:
    state = _state(request)
    with state.lock:
        return [{"term_months": p.term_months, "apr": f"{p.apr:.2f}"} for p in state.book(practice_id).practice.plans]
