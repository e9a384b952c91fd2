"""`AesthetixCrmHook`: the HighLevel API v2 subset Aesthetix CRM exposes, for one location (sub-account).

Connection (conn type `aesthetix_crm`, registered by this package's provider entry point; an `http` connection
works too): host = base URL (`https://services.leadconnectorhq.com` in production, the sandbox's
`http://127.0.0.1:8102` locally), password = the location's Private Integration Token, extra `location_id`
(required). A practice on OAuth (`crm_auth: oauth`) uses the marketplace app's connection instead, with
`location_id=` given and `credentials=` the location's tokens (`cherry_sync.hooks.oauth`); build either kind with
`cherry_sync.runtime.crm_hook`. Optional extras as for every hook (timeouts, retries, TLS and proxies: `hooks.base`) and pacing:
`burst_limit` (default 95) per `burst_window_seconds` (default 10), `daily_reserve` (requests kept back from the
daily budget, default 0), `max_in_flight` (most requests of the location in flight at once from one task, default
8: see `hooks.inflight`).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from cherry_sync import provider
from cherry_sync.hooks import errors
from cherry_sync.hooks.base import PROBE_RETRY, ApiHook
from cherry_sync.hooks.paging import OffsetPaging, PageNumberPaging, SearchAfterPaging

API_VERSION = "2021-07-28"
CONVERSATIONS_VERSION = "2021-04-15"
BULK_TAG_BATCH = 100
SEARCH_PAGE_LIMIT = 500
OPPORTUNITY_PAGE_LIMIT = 100
MEDIA_PAGE_LIMIT = 100
SETTLE_POLL_SECONDS = 0.5  # between look-ups for a write whose answer was lost


class AesthetixCrmHook(ApiHook):
    """Client of one CRM location. Writes are idempotent or reconciled before any repeat."""

    conn_name_attr = "crm_conn_id"
    default_conn_name = "aesthetix_crm_default"
    conn_type = provider.CRM_CONN_TYPE
    hook_name = provider.CRM_HOOK_NAME
    service = "crm"
    version_header = API_VERSION
    conn_fields = provider.CRM_FIELDS

    def __init__(self, crm_conn_id: str = default_conn_name, *, location_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(crm_conn_id, **kwargs)
        self._location_id = location_id
        self._traces = threading.local()

    @property
    def last_trace_id(self) -> str | None:
        """The CRM's `traceId` of the last write this thread sent (its answer, or its error's), if it gave one.

        Per thread, because a `WriteWindow` runs several writes at once: read it in the thread that wrote, right
        after the call. Only the id is kept, never the body.
        """
        return getattr(self._traces, "last", None)

    def _traced(self, body: Any) -> Any:
        self._traces.last = _trace_of(body)
        return body

    def _write(self, method: str, path: str, **kwargs: Any) -> Any:
        """`request` for a write, noting the answer's `traceId` (an error's is noted by `_error_for`)."""
        self._traces.last = None
        return self._traced(self.request(method, path, **kwargs))

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return copy.deepcopy(provider.CRM_FIELD_BEHAVIOUR)

    @property
    def location_id(self) -> str:
        """The location given to the hook, else the connection's `location_id` extra."""
        if self._location_id:
            return self._location_id
        location = self.extra.get("location_id")
        if not location:
            raise errors.ValidationError("connection", f"connection {self.conn_id} has no location_id extra")
        return str(location)

    @property
    def pace_key(self) -> str:
        # HighLevel counts per location, whatever token is used.
        return f"crm-{self.location_id}"

    def ping(self) -> None:
        """`GET /locations/{id}` once: the token is valid for this location. On the marketplace app's connection
        (no location, a `company_id` extra: the form's Test button) the app's client id and secret are checked."""
        if not self._location_id and not self.extra.get("location_id") and self.extra.get("company_id"):
            from cherry_sync.hooks.oauth import OAuthApp

            OAuthApp(self.conn_id, connection=self.connection, pacer=self.pacer).ping()
            return
        self.request("GET", f"/locations/{self.location_id}", op="GET /locations/{id}", retry=PROBE_RETRY)

    # -- location -------------------------------------------------------------------------------

    def get_location(self) -> dict:
        """`GET /locations/{locationId}`: the location (sub-account), e.g. its `timezone` (IANA name)."""
        op = "GET /locations/{id}"
        body = self.request("GET", f"/locations/{self.location_id}", op=op)
        location = body.get("location") if isinstance(body, dict) else None
        if not isinstance(location, dict):
            raise errors.MalformedResponseError(op, "no location object in the response")
        return location

    # -- custom fields --------------------------------------------------------------------------

    def list_custom_fields(self, model: str = "contact") -> list[dict]:
        body = self.request(
            "GET",
            f"/locations/{self.location_id}/customFields",
            op="GET /locations/{id}/customFields",
            params={"model": model},
        )
        return list(body.get("customFields", []))

    def create_custom_field(self, body: dict) -> dict:
        """Create a field; a repeat after an unknown outcome first looks the field up by fieldKey."""
        key = body.get("fieldKey")
        model = body.get("model", "contact")

        def reconcile() -> dict | None:
            # The CRM may store (and return) the key with or without the "contact." prefix, whichever was sent.
            wanted = _bare_field_key(key, model)
            found = next(
                (f for f in self.list_custom_fields(model) if _bare_field_key(f.get("fieldKey"), model) == wanted),
                None,
            )
            return {"customField": found} if found else None

        result = self.request(
            "POST",
            f"/locations/{self.location_id}/customFields",
            op="POST /locations/{id}/customFields",
            json=body,
            idempotent=False,
            reconcile=reconcile if key else None,
        )
        return result.get("customField", result)

    def update_custom_field(self, field_id: str, body: dict) -> dict:
        result = self.request(
            "PUT",
            f"/locations/{self.location_id}/customFields/{field_id}",
            op="PUT /locations/{id}/customFields/{id}",
            json=body,
        )
        return result.get("customField", result)

    # -- contacts -------------------------------------------------------------------------------

    def get_contact(self, contact_id: str) -> dict | None:
        try:
            body = self.request("GET", f"/contacts/{contact_id}", op="GET /contacts/{id}")
        except errors.NotFoundError:
            return None
        return body.get("contact")

    def find_duplicate(self, *, email: str | None = None, phone: str | None = None) -> dict | None:
        """`GET /contacts/search/duplicate`: the contact the CRM would match (email first, then phone)."""
        if not email and not phone:
            return None
        params = {"locationId": self.location_id}
        if email:
            params["email"] = email
        if phone:
            params["number"] = phone  # requests encodes '+' as %2B
        body = self.request("GET", "/contacts/search/duplicate", op="GET /contacts/search/duplicate", params=params)
        return body.get("contact") or None

    def upsert_contact(self, body: dict) -> tuple[dict, bool]:
        """`POST /contacts/upsert` -> (contact, created). Never send `tags` here: it replaces them all."""
        if "tags" in body:
            raise ValueError("upsert bodies must not carry tags (they would replace the contact's tags)")
        body = {**body, "locationId": self.location_id}
        unknown_outcome: list[bool] = []

        def reconcile() -> None:
            # Always repeat. Upsert is keyed on email/phone, so a repeat cannot duplicate the contact, and only a
            # repeat makes sure these values are in the CRM: a lookup would also find a contact that existed
            # before and that the lost attempt never changed, and the update would be dropped.
            unknown_outcome.append(True)
            return None

        result = self._write(
            "POST", "/contacts/upsert", op="POST /contacts/upsert", json=body, idempotent=True, reconcile=reconcile
        )
        contact = result.get("contact") or {}
        if not contact.get("id"):
            raise errors.MalformedResponseError("POST /contacts/upsert", "no contact id in the response")
        # A repeat of a create that had landed answers new=False. Callers upsert contacts they did not find, so
        # after an unknown outcome the contact counts as created.
        return contact, bool(result.get("new")) or bool(unknown_outcome)

    def update_contact(self, contact_id: str, body: dict) -> dict:
        if "tags" in body:
            raise ValueError("update bodies must not carry tags (they would replace the contact's tags)")
        result = self._write("PUT", f"/contacts/{contact_id}", op="PUT /contacts/{id}", json=body)
        return result.get("contact", result)

    def search_contacts(
        self, *, filters: list[dict] | None = None, query: str | None = None, page_limit: int = SEARCH_PAGE_LIMIT
    ) -> Iterator[dict]:
        """`POST /contacts/search`, every match, following `searchAfter` (no 10,000-record page ceiling)."""
        body: dict[str, Any] = {"locationId": self.location_id}
        if filters:
            body["filters"] = filters
        if query:
            body["query"] = query
        paging = SearchAfterPaging(body, page_limit)
        for page in self.paginate("POST", "/contacts/search", paging, op="POST /contacts/search", idempotent=True):
            yield from page.items

    def add_tags(self, contact_id: str, tags: list[str]) -> None:
        self._write(
            "POST", f"/contacts/{contact_id}/tags", op="POST /contacts/{id}/tags", json={"tags": tags}, idempotent=True
        )

    def remove_tags(self, contact_id: str, tags: list[str]) -> None:
        self._write("DELETE", f"/contacts/{contact_id}/tags", op="DELETE /contacts/{id}/tags", json={"tags": tags})

    def bulk_update_tags(self, action: str, contact_ids: list[str], tags: list[str]) -> dict:
        """`POST /contacts/bulk/tags/update/{add|remove}` for at most 100 contacts."""
        if action not in ("add", "remove"):
            raise ValueError("action must be 'add' or 'remove'")
        if len(contact_ids) > BULK_TAG_BATCH:
            raise ValueError(f"at most {BULK_TAG_BATCH} contacts per bulk call")
        return self._write(
            "POST",
            f"/contacts/bulk/tags/update/{action}",
            op=f"POST /contacts/bulk/tags/update/{action}",
            json={"contacts": contact_ids, "tags": tags, "locationId": self.location_id},
            idempotent=True,
        )

    # -- opportunities --------------------------------------------------------------------------

    def list_pipelines(self) -> list[dict]:
        body = self.request(
            "GET",
            "/opportunities/pipelines",
            op="GET /opportunities/pipelines",
            params={"locationId": self.location_id},
        )
        return list(body.get("pipelines", []))

    def search_opportunities(
        self, *, pipeline_id: str | None = None, contact_id: str | None = None, status: str | None = None
    ) -> list[dict]:
        pages = self.iter_opportunity_pages(pipeline_id=pipeline_id, contact_id=contact_id, status=status)
        return [opp for page, _ in pages for opp in page]

    def iter_opportunity_pages(
        self, *, pipeline_id: str | None = None, contact_id: str | None = None, status: str | None = None
    ) -> Iterator[tuple[list[dict], int | None]]:
        """`GET /opportunities/search`, one page (100) at a time, to the end: (opportunities, the search's total
        as `meta.total` gives it, or None)."""
        params: dict[str, Any] = {"location_id": self.location_id}
        if pipeline_id:
            params["pipeline_id"] = pipeline_id
        if contact_id:
            params["contact_id"] = contact_id
        if status:
            params["status"] = status
        paging = PageNumberPaging(params, OPPORTUNITY_PAGE_LIMIT, "opportunities")
        for page in self.paginate("GET", "/opportunities/search", paging, op="GET /opportunities/search"):
            yield page.items, page.total

    def create_opportunity(self, body: dict) -> dict:
        """Create one; a repeat after an unknown outcome first searches for it (same contact, pipeline, name)."""
        body = {**body, "locationId": self.location_id}

        def reconcile() -> dict | None:
            for opp in self.search_opportunities(pipeline_id=body["pipelineId"], contact_id=body["contactId"]):
                if opp.get("name") == body.get("name"):
                    return {"opportunity": opp}
            return None

        result = self._write(
            "POST", "/opportunities/", op="POST /opportunities", json=body, idempotent=False, reconcile=reconcile
        )
        return result.get("opportunity", result)

    def update_opportunity(self, opportunity_id: str, body: dict) -> dict:
        result = self._write("PUT", f"/opportunities/{opportunity_id}", op="PUT /opportunities/{id}", json=body)
        return result.get("opportunity", result)

    def set_opportunity_status(self, opportunity_id: str, status: str) -> None:
        self._write(
            "PUT",
            f"/opportunities/{opportunity_id}/status",
            op="PUT /opportunities/{id}/status",
            json={"status": status},
        )

    # -- media library --------------------------------------------------------------------------

    def list_media(self, *, kind: str = "file", parent_id: str | None = None, query: str | None = None) -> list[dict]:
        """`GET /medias/files` for one folder level (offset/limit paged to the end)."""
        params: dict[str, Any] = {
            "altType": "location",
            "altId": self.location_id,
            "sortBy": "createdAt",
            "sortOrder": "asc",
            "type": kind,
        }
        if parent_id:
            params["parentId"] = parent_id
        if query:
            params["query"] = query
        paging = OffsetPaging(params, MEDIA_PAGE_LIMIT, "files")
        return [f for page in self.paginate("GET", "/medias/files", paging, op="GET /medias/files") for f in page.items]

    def create_folder(self, name: str, parent_id: str | None = None, *, settle_seconds: float = 0.0) -> dict:
        """Create a media folder; a repeat after an unknown outcome first looks for it by name (for up to
        `settle_seconds` while it is not there: see `_look_until`)."""
        body: dict[str, Any] = {"altId": self.location_id, "altType": "location", "name": name}
        if parent_id:
            body["parentId"] = parent_id

        def lookup() -> dict | None:
            return next((f for f in self.list_media(kind="folder", parent_id=parent_id) if f.get("name") == name), None)

        def reconcile() -> dict | None:
            return self._look_until(lookup, settle_seconds)

        return self.request(
            "POST", "/medias/folder", op="POST /medias/folder", json=body, idempotent=False, reconcile=reconcile
        )

    def upload_file(
        self, *, name: str, content: bytes, content_type: str, parent_id: str | None, settle_seconds: float = 0.0
    ) -> dict:
        """Multipart upload; a repeat after an unknown outcome first looks for the file by name in its folder (for
        up to `settle_seconds` while it is not there: see `_look_until`)."""
        form: dict[str, Any] = {"name": name, "hosted": "false"}
        if parent_id:
            form["parentId"] = parent_id

        def lookup() -> dict | None:
            match = next((f for f in self.list_media(kind="file", parent_id=parent_id) if f.get("name") == name), None)
            if match is None:
                return None
            return {"fileId": match.get("id") or match.get("_id"), "url": match.get("url")}

        def reconcile() -> dict | None:
            return self._look_until(lookup, settle_seconds)

        return self.request(
            "POST",
            "/medias/upload-file",
            op="POST /medias/upload-file",
            data=form,
            files={"file": (name, content, content_type)},
            idempotent=False,
            reconcile=reconcile,
        )

    def delete_media(self, media_id: str) -> bool:
        """`DELETE /medias/{id}` (a file or folder); False when it was already gone (e.g. a repeat that had landed)."""
        try:
            self.request(
                "DELETE",
                f"/medias/{media_id}",
                op="DELETE /medias/{id}",
                params={"altType": "location", "altId": self.location_id},
            )
        except errors.NotFoundError:
            return False
        return True

    def _look_until(self, lookup: Callable[[], dict | None], settle_seconds: float) -> dict | None:
        """`lookup()`, repeated while it finds nothing until `settle_seconds` have passed. A request that timed out
        may still be in flight and land a little later (the CRM keeps working after the client gave up); repeating
        the write before then would leave a duplicate."""
        deadline = time.monotonic() + max(0.0, settle_seconds)
        while True:
            found = lookup()
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            self._sleep(min(SETTLE_POLL_SECONDS, remaining))

    # -- conversations --------------------------------------------------------------------------

    def send_email(self, body: dict) -> dict:
        """`POST /conversations/messages` (type Email). Not repeated when the outcome is unknown."""
        return self.request(
            "POST",
            "/conversations/messages",
            op="POST /conversations/messages",
            json={"type": "Email", **body},
            headers={"Version": CONVERSATIONS_VERSION},
            idempotent=False,
        )

    # -- error shape ----------------------------------------------------------------------------

    def _error_for(self, response: requests.Response, op: str) -> errors.ApiError:
        error = super()._error_for(response, op)
        if error.status == 400 and is_location_inactive(error):
            from cherry_sync.hooks.oauth import LocationInactive  # oauth builds on this module

            error = LocationInactive(self.location_id, op)
        try:
            body = response.json()
        except ValueError:
            body = None
        # The trace id travels on the error for the outcome history; the body itself goes nowhere.
        error.trace_id = _trace_of(body)  # type: ignore[attr-defined]
        self._traces.last = error.trace_id  # type: ignore[attr-defined]
        return error

    def _error_details(self, response: requests.Response) -> tuple[str | None, str]:
        return error_details(response)


def error_details(response: requests.Response, message_keys: tuple[str, ...] = ("message",)) -> tuple[str | None, str]:
    """(`error`, message) of a HighLevel error body (`{statusCode, message, error}`, where a 422's message is a list
    of strings); the message is the first of `message_keys` present (the OAuth endpoints answer RFC 6749's
    `error_description`). Without a JSON object: (None, the HTTP reason)."""
    try:
        body = response.json()
    except ValueError:
        return None, response.reason or ""
    if not isinstance(body, dict):
        return None, response.reason or ""
    message = next((body[key] for key in message_keys if key in body), "")
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    code = body.get("error")
    return (str(code) if code else None), str(message)


def trace_id_of(error: BaseException) -> str | None:
    """The CRM's `traceId` of the answer that raised `error`, if it was a CRM error answer that gave one."""
    return getattr(error, "trace_id", None)


def _trace_of(body: Any) -> str | None:
    trace = body.get("traceId") if isinstance(body, dict) else None
    return trace if isinstance(trace, str) and 0 < len(trace) <= 128 else None


def is_location_inactive(error: errors.ApiError) -> bool:
    """HighLevel's answer for a suspended location, on any endpoint: 400 "Location is not active"."""
    return "location is not active" in (error.api_message or "").lower()


def _bare_field_key(key: object, model: str) -> str:
    """'contact.cherry_x' and 'cherry_x' -> 'cherry_x' (for `model` 'contact')."""
    text = str(key or "").strip()
    prefix = f"{model}."
    return text[len(prefix) :] if text.startswith(prefix) else text
