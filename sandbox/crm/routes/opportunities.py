"""Pipelines and opportunities: list pipelines, search (GET, snake_case params), create, get, update,
status, delete."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request

from sandbox.crm import opportunities
from sandbox.crm.auth import V2Caller
from sandbox.crm.errors import unprocessable
from sandbox.crm.schemas import CreateOpportunity, UpdateOpportunity, UpdateOpportunityStatus

router = APIRouter(prefix="/opportunities", tags=["opportunities"])


@router.get("/pipelines")
def list_pipelines(caller: V2Caller, location_id: str = Query(alias="locationId")) -> dict:
    loc = caller.require(location_id)
    with caller.state.lock:
        return {"pipelines": [p.render() for p in loc.pipelines.values()]}


@router.get("/search")
def search_opportunities(
    request: Request,
    caller: V2Caller,
    location_id: str = Query(),
    pipeline_id: str | None = None,
    pipeline_stage_id: str | None = None,
    contact_id: str | None = None,
    status: Literal["open", "won", "lost", "abandoned", "all"] | None = None,
    assigned_to: str | None = None,
    q: str | None = None,
    opportunity_id: str | None = Query(None, alias="id"),
    order: Literal["added_asc", "added_desc"] = "added_desc",
    page: int = Query(1, ge=1),
    limit: int = Query(20, ge=1, le=100),
    start_after: str | None = Query(None, alias="startAfter"),
    start_after_id: str | None = Query(None, alias="startAfterId"),
) -> dict:
    """Newest first by default; page/limit, or the startAfter/startAfterId cursor from `meta`."""
    loc = caller.require(location_id)
    with caller.state.lock:
        wanted = {
            "pipelineId": pipeline_id,
            "pipelineStageId": pipeline_stage_id,
            "contactId": contact_id,
            "assignedTo": assigned_to,
            "id": opportunity_id,
        }
        pool = (
            [loc.opportunities[i] for i in loc.opportunities_by_contact.get(contact_id, ())]
            if contact_id
            else loc.opportunities.values()
        )
        rows = [
            o
            for o in pool
            if all(v is None or o.get(k) == v for k, v in wanted.items())
            and (status in (None, "all") or o["status"] == status)
            and (not q or q.lower() in o["name"].lower())
        ]
        rows.sort(key=lambda o: (o["createdAt"], o["id"]), reverse=order == "added_desc")
        start = (page - 1) * limit
        if start_after_id:
            # The cursor is the last row of the previous page (startAfter is informative only here).
            ids = [o["id"] for o in rows]
            if start_after_id not in ids:
                raise unprocessable("startAfterId does not refer to an opportunity of this search")
            start = ids.index(start_after_id) + 1
        chosen = rows[start : start + limit]
        has_next = start + limit < len(rows)
        current = start // limit + 1
        meta = {
            "total": len(rows),
            "currentPage": current,
            "nextPage": current + 1 if has_next else None,
            "prevPage": current - 1 if current > 1 else None,
            "startAfterId": chosen[-1]["id"] if chosen and has_next else None,
            "startAfter": chosen[-1]["createdAt"] if chosen and has_next else None,
            "nextPageUrl": _next_url(request, current + 1) if has_next else None,
        }
        return {"opportunities": [opportunities.render(loc, o) for o in chosen], "meta": meta, "aggregations": {}}


def _next_url(request: Request, page: int) -> str:
    return str(request.url.include_query_params(page=page))


@router.post("/", status_code=201)
@router.post("", status_code=201, include_in_schema=False)
def create_opportunity(body: CreateOpportunity, caller: V2Caller) -> dict:
    loc = caller.require(body.locationId)
    with caller.state.lock:
        opp = opportunities.create(caller.state, loc, body)
        return {"opportunity": opportunities.render(loc, opp)}


@router.get("/{id}")
def get_opportunity(id: str, caller: V2Caller) -> dict:
    loc = caller.location
    with caller.state.lock:
        opp = caller.state.record_of(loc, "opportunities", id)
        return {"opportunity": opportunities.render(loc, opp)}


@router.put("/{id}")
def update_opportunity(id: str, body: UpdateOpportunity, caller: V2Caller) -> dict:
    loc = caller.location
    with caller.state.lock:
        opp = caller.state.record_of(loc, "opportunities", id)
        return {"opportunity": opportunities.render(loc, opportunities.update(loc, opp, body))}


@router.put("/{id}/status")
def update_opportunity_status(id: str, body: UpdateOpportunityStatus, caller: V2Caller) -> dict:
    loc = caller.location
    with caller.state.lock:
        opp = caller.state.record_of(loc, "opportunities", id)
        opportunities.set_status(opp, opportunities.check_status(body.status), body.lostReasonId)
        return {"succeded": True}


@router.delete("/{id}")
def delete_opportunity(id: str, caller: V2Caller) -> dict:
    loc = caller.location
    with caller.state.lock:
        caller.state.record_of(loc, "opportunities", id)
        opportunities.delete(loc, id)
        return {"succeded": True}
