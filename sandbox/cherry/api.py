"""The public Cherry API (`/v1`), as documented in openapi.yaml.

Handlers are thin: authenticate the key to a practice's book, validate parameters, read under the state
lock, and render. Bodies are built as plain dicts and sent with JSONResponse directly (FastAPI's encoder
would walk every field of a 500-row page again).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from sandbox.cherry.book import PracticeBook
from sandbox.cherry.cursors import InvalidCursor
from sandbox.cherry.errors import ApiError, invalid, not_found
from sandbox.cherry.estimates import MAX_ESTIMATE_AMOUNT, estimate
from sandbox.cherry.formats import money_or_none, parse_date, parse_money, parse_rfc3339, stamp
from sandbox.cherry.metrics import MAX_RANGE_DAYS, report
from sandbox.cherry.state import CherryState

AccountStatus = Literal["ACTIVE", "INACTIVE", "EXPIRED", "DECLINED", "PENDING_REVIEW"]
Limit = Annotated[int, Query(ge=1, le=500)]
DEFAULT_LIMIT = 100

router = APIRouter(prefix="/v1", tags=["cherry"])


def bearer_token(request: Request) -> str | None:
    """The API key from `Authorization: Bearer <key>`, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def state_of(request: Request) -> CherryState:
    return request.app.state.cherry


def practice_book(request: Request) -> PracticeBook:
    """Dependency: the practice the presented key belongs to (401 unknown, 403 not activated)."""
    return state_of(request).authenticate(bearer_token(request))


Book = Annotated[PracticeBook, Depends(practice_book)]


def _position(state: CherryState, cursor: str | None, kind: str, book: PracticeBook) -> int:
    if cursor is None:
        return 0
    try:
        return state.codec.decode(cursor, kind, book.practice.id)
    except InvalidCursor as exc:
        raise invalid(str(exc)) from exc


def _since(updated_since: str | None) -> str | None:
    if updated_since is None:
        return None
    moment = parse_rfc3339(updated_since)
    if moment is None:
        raise invalid("updated_since must be an RFC 3339 timestamp with a time zone, e.g. 2025-01-31T00:00:00Z")
    return stamp(moment)


def _page(state, book, index, kind, cursor, limit, updated_since, keep=None) -> JSONResponse:
    with state.lock:
        records, last_seq, has_more = index.page(
            _position(state, cursor, kind, book), limit, _since(updated_since), keep
        )
        data = [record.to_json() for record in records]
        next_cursor = state.codec.encode(kind, book.practice.id, last_seq) if has_more else None
    return JSONResponse({"data": data, "next_cursor": next_cursor, "has_more": has_more})


@router.get("/practice")
def get_practice(book: Book) -> JSONResponse:
    return JSONResponse(book.practice.to_json())


@router.get("/patients")
def list_patients(
    request: Request,
    book: Book,
    status: AccountStatus | None = None,
    updated_since: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> JSONResponse:
    keep = (lambda v: v.effective("account_status") == status) if status else None
    return _page(state_of(request), book, book.patients, "patients", cursor, limit, updated_since, keep)


@router.get("/patients/{patient_id}")
def get_patient(request: Request, book: Book, patient_id: str) -> JSONResponse:
    with state_of(request).lock:
        version = book.patient(patient_id)
        if version is None:
            raise not_found("patient")
        return JSONResponse(version.to_json())


@router.get("/patients/{patient_id}/estimates")
def get_patient_estimates(request: Request, book: Book, patient_id: str) -> JSONResponse:
    with state_of(request).lock:
        version = book.patient(patient_id)
        if version is None:
            raise not_found("patient")
        amount = money_or_none(version.balance_available)
        if amount is None:
            amount = money_or_none(version.approval_amount)
        return JSONResponse(estimate(amount, book.practice.plans))


@router.get("/payments")
def list_payments(
    request: Request,
    book: Book,
    updated_since: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> JSONResponse:
    return _page(state_of(request), book, book.payments, "payments", cursor, limit, updated_since)


@router.get("/payments/{payment_id}")
def get_payment(request: Request, book: Book, payment_id: str) -> JSONResponse:
    with state_of(request).lock:
        payment = book.payment(payment_id)
        if payment is None:
            raise not_found("payment")
        return JSONResponse(payment.to_json())


@router.get("/events")
def list_events(request: Request, book: Book, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        start = _position(state, cursor, "events", book)
        if start > len(book.events):
            raise invalid("cursor is not valid")
        page = book.events[start : start + limit]
        position = start + len(page)
        body = {
            "data": [event.to_json() for event in page],
            "next_cursor": state.codec.encode("events", book.practice.id, position),
            "has_more": position < len(book.events),
        }
    return JSONResponse(body)


@router.get("/estimates")
def get_estimates(book: Book, amount: str) -> JSONResponse:
    value = parse_money(amount)
    if value is None or value <= 0 or value > MAX_ESTIMATE_AMOUNT:
        raise invalid("amount must be a decimal greater than 0 and at most 50000.00, with up to 2 decimals")
    return JSONResponse(estimate(value, book.practice.plans))


@router.get("/marketing-assets")
def list_assets(
    request: Request,
    book: Book,
    updated_since: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> JSONResponse:
    state = state_of(request)
    return _page(state, book, state.assets.index, "assets", cursor, limit, updated_since)


@router.get("/marketing-assets/{asset_id}")
def get_asset(request: Request, book: Book, asset_id: str) -> JSONResponse:
    state = state_of(request)
    with state.lock:
        record = state.assets.get(asset_id)
        if record is None:
            raise not_found("asset")
        return JSONResponse(record.to_json())


@router.get("/marketing-assets/{asset_id}/content")
def get_asset_content(request: Request, book: Book, asset_id: str) -> Response:
    state = state_of(request)
    with state.lock:
        record = state.assets.get(asset_id)
        if record is None:
            raise not_found("asset")
        meta = record.to_json()
        body = record.content()
    return Response(body, media_type=record.content_type, headers={"ETag": f'"{meta["sha256"]}"'})


@router.get("/reports/metrics")
def get_metrics(request: Request, book: Book, start: str, end: str) -> JSONResponse:
    first, last = parse_date(start), parse_date(end)
    if first is None or last is None:
        raise invalid("start and end must be dates (YYYY-MM-DD)")
    if last < first:
        raise invalid("end must not be before start")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ApiError(400, "invalid_request", f"the range may cover at most {MAX_RANGE_DAYS} days")
    with state_of(request).lock:
        return JSONResponse(report(book, first, last))
