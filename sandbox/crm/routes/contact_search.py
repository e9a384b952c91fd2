"""POST /contacts/search (the advanced search; eventually consistent, see ContactBook)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from sandbox.crm.auth import V2Caller
from sandbox.crm.schemas import SearchContacts
from sandbox.crm.search import search, search_after_values

router = APIRouter(prefix="/contacts", tags=["contacts"])


@router.post("/search")
def search_contacts(body: SearchContacts, caller: V2Caller, request: Request) -> dict:
    loc = caller.require(body.locationId)
    with caller.state.lock:
        result = search(loc, body, request.app.state.search_cache)
        contacts = []
        for c in result["page"]:
            doc = c.render(loc.fields)
            doc["searchAfter"] = search_after_values(c, result["sort"])
            contacts.append(doc)
        return {"contacts": contacts, "total": result["total"]}
