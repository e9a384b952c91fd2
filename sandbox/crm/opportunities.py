"""Opportunity records and their rendering (stored as plain dicts: few, and shaped like the API)."""

from __future__ import annotations

from typing import Any

from sandbox.crm import custom_fields, normalize
from sandbox.crm.errors import bad_request, unprocessable
from sandbox.crm.state import CrmState, Location, Pipeline, now_ms


def pipeline_and_stage(loc: Location, pipeline_id: str, stage_id: str | None) -> tuple[Pipeline, str]:
    pipeline = loc.pipelines.get(pipeline_id)
    if pipeline is None:
        raise bad_request(f"Pipeline with id {pipeline_id} not found in this location")
    if stage_id is None:
        return pipeline, pipeline.stages[0]["id"]
    if pipeline.stage(stage_id) is None:
        raise bad_request(f"Stage {stage_id} does not belong to pipeline {pipeline_id}")
    return pipeline, stage_id


def check_status(status: str) -> str:
    if status == "all":
        # 'all' is in the spec's enum but only means something as a search filter.
        raise unprocessable("status must be one of the following values: open, won, lost, abandoned")
    return status


def write_custom_fields(loc: Location, items: list[Any] | None, current: dict | None) -> dict | None:
    if items is None:
        return current
    return custom_fields.apply_writes(loc.fields, "opportunity", [i.item() for i in items], current)


def create(state: CrmState, loc: Location, body: Any) -> dict[str, Any]:
    contact = state.contact_of(loc, body.contactId)
    pipeline, stage_id = pipeline_and_stage(loc, body.pipelineId, body.pipelineStageId)
    status = check_status(body.status)
    if not loc.settings.allow_duplicate_opportunity:
        for opp_id in loc.opportunities_by_contact.get(contact.id, ()):
            if loc.opportunities[opp_id]["pipelineId"] == pipeline.id:
                raise bad_request("Can not create duplicate opportunity for the contact.")
    stamp = now_ms()
    opp = {
        "id": state.ids.record_id(),
        "name": body.name,
        "monetaryValue": body.monetaryValue or 0,
        "pipelineId": pipeline.id,
        "pipelineStageId": stage_id,
        "assignedTo": body.assignedTo,
        "status": status,
        "source": "",
        "lastStatusChangeAt": stamp,
        "lastStageChangeAt": stamp,
        "createdAt": stamp,
        "updatedAt": stamp,
        "contactId": contact.id,
        "locationId": loc.id,
        "lostReasonId": None,
        "customFields": write_custom_fields(loc, body.customFields, None),
    }
    loc.opportunities[opp["id"]] = opp
    loc.opportunities_by_contact.setdefault(contact.id, []).append(opp["id"])
    return opp


def delete(loc: Location, opportunity_id: str) -> None:
    opp = loc.opportunities.pop(opportunity_id)
    siblings = loc.opportunities_by_contact.get(opp["contactId"], [])
    if opportunity_id in siblings:
        siblings.remove(opportunity_id)


def update(loc: Location, opp: dict[str, Any], body: Any) -> dict[str, Any]:
    """PUT /opportunities/{id}: validates everything before changing anything."""
    given = body.given()
    new = dict(opp)
    if "pipelineId" in given or "pipelineStageId" in given:
        pipeline_id = body.pipelineId or opp["pipelineId"]
        stage_id = body.pipelineStageId
        if stage_id is None and pipeline_id == opp["pipelineId"]:
            stage_id = opp["pipelineStageId"]
        _, stage_id = pipeline_and_stage(loc, pipeline_id, stage_id)
        if stage_id != opp["pipelineStageId"]:
            new["lastStageChangeAt"] = now_ms()
        new["pipelineId"], new["pipelineStageId"] = pipeline_id, stage_id
    if body.status is not None:
        set_status(new, check_status(body.status), None)
    for key in ("name", "monetaryValue", "assignedTo"):
        if key in given and given[key] is not None:
            new[key] = given[key]
    new["customFields"] = write_custom_fields(loc, body.customFields, opp["customFields"])
    new["updatedAt"] = max(now_ms(), opp["updatedAt"])
    opp.clear()
    opp.update(new)
    return opp


def set_status(opp: dict[str, Any], status: str, lost_reason_id: str | None) -> None:
    if opp["status"] != status:
        opp["lastStatusChangeAt"] = now_ms()
    opp["status"] = status
    opp["lostReasonId"] = lost_reason_id if status == "lost" else None
    opp["updatedAt"] = max(now_ms(), opp["updatedAt"])


def render(loc: Location, opp: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in opp.items() if k != "customFields" and v is not None}
    for key in ("lastStatusChangeAt", "lastStageChangeAt", "createdAt", "updatedAt"):
        out[key] = normalize.iso_ms(opp[key])
    out["lastActionDate"] = out["updatedAt"]
    # Opportunity reads use {id, fieldValue}, unlike contacts' {id, value}.
    out["customFields"] = [
        {"id": fid, "fieldValue": value}
        for fid, value in (opp["customFields"] or {}).items()
        if fid in loc.fields.by_id
    ]
    contact = loc.contacts.get(opp["contactId"])
    if contact is not None:
        out["contact"] = {
            k: v
            for k, v in {
                "id": contact.id,
                "name": contact.full_name,
                "companyName": (contact.extra or {}).get("companyName"),
                "email": contact.email,
                "phone": contact.phone,
                "tags": list(contact.tags),
            }.items()
            if v is not None
        }
    return out
