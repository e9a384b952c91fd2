"""How each paged list of the two APIs is walked: one loop (`ApiHook.paginate`), one small shape per paging style.

A `Paging` says two things: the request arguments for the page at a token (`request`), and what a response body
holds: its `Page` and the token of the next page, or None when this page is the last (`read`). The loop sends,
reads and follows the token; every request goes through `ApiHook.request`, so every page is paced, retried and
turned into typed errors like any other call.

Styles the APIs use:
- `CursorPaging`: Cherry's `?cursor=` lists, `{data, next_cursor, has_more}`; the last page's `next_cursor` is
  where a later call resumes (the event feed keeps it);
- `SearchAfterPaging`: HighLevel's `POST /contacts/search`, `searchAfter` taken from the last contact of a full page
  (no 10,000-record ceiling, unlike `page`);
- `PageNumberPaging`: `?page=n&limit=` with the search's total in `meta.total` (`GET /opportunities/search`);
- `OffsetPaging`: `?offset=&limit=` (`GET /medias/files`).
A short page (fewer items than the limit) ends the three HighLevel styles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cherry_sync.hooks import errors


@dataclass(frozen=True)
class Page:
    """One page of a list: its items, the API's resume cursor (cursor lists), whether more follow, the total if given."""

    items: list[dict]
    next_cursor: str | None = None
    has_more: bool = False
    total: int | None = None


class Paging(Protocol):
    """One paging style: the request for the page at a token, and the page plus the next token from a response."""

    def request(self, token: Any | None) -> dict[str, Any]:
        """`ApiHook.request` keyword arguments (`params=` or `json=`) for the page at `token` (None: the first)."""
        ...

    def read(self, body: Any, token: Any | None, op: str) -> tuple[Page, Any | None]:
        """The page in `body`, and the token of the next page (None: this is the last)."""
        ...


def _listed(body: Any, key: str, op: str) -> list[dict]:
    items = body.get(key, []) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise errors.MalformedResponseError(op, f"list response without a {key} array")
    return items


@dataclass(frozen=True)
class CursorPaging:
    """Cherry's cursor lists: `?cursor=` in, `{data, next_cursor, has_more}` out."""

    params: dict[str, Any] = field(default_factory=dict)

    def request(self, token: str | None) -> dict[str, Any]:
        return {"params": {**self.params, "cursor": token} if token else dict(self.params)}

    def read(self, body: Any, token: str | None, op: str) -> tuple[Page, str | None]:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise errors.MalformedResponseError(op, "list response without a data array")
        page = Page(items=body["data"], next_cursor=body.get("next_cursor"), has_more=bool(body.get("has_more")))
        return page, page.next_cursor if page.has_more and page.next_cursor else None


@dataclass(frozen=True)
class SearchAfterPaging:
    """HighLevel's contact search: page 1 first, then `searchAfter` = the last contact's sort values."""

    body: dict[str, Any]
    page_limit: int
    items_key: str = "contacts"

    def request(self, token: list | None) -> dict[str, Any]:
        body = {**self.body, "pageLimit": self.page_limit}
        if token is None:
            body["page"] = 1
        else:
            body["searchAfter"] = token
        return {"json": body}

    def read(self, body: Any, token: list | None, op: str) -> tuple[Page, list | None]:
        items = _listed(body, self.items_key, op)
        if len(items) < self.page_limit:
            return Page(items=items), None
        after = items[-1].get("searchAfter")
        if not after:
            raise errors.MalformedResponseError(op, "full page without searchAfter")
        return Page(items=items, has_more=True), after


@dataclass(frozen=True)
class PageNumberPaging:
    """`?page=n&limit=` from page 1; `meta.total` is the search's total when the API gives it."""

    params: dict[str, Any]
    limit: int
    items_key: str

    def request(self, token: int | None) -> dict[str, Any]:
        return {"params": {**self.params, "limit": self.limit, "page": token or 1}}

    def read(self, body: Any, token: int | None, op: str) -> tuple[Page, int | None]:
        items = _listed(body, self.items_key, op)
        total = (body.get("meta") or {}).get("total")
        full = len(items) >= self.limit
        page = Page(items=items, has_more=full, total=int(total) if isinstance(total, int | float) else None)
        return page, (token or 1) + 1 if full else None


@dataclass(frozen=True)
class OffsetPaging:
    """`?offset=&limit=` from offset 0 (`offset_param`: the API's name for the offset, e.g. `skip`)."""

    params: dict[str, Any]
    limit: int
    items_key: str
    offset_param: str = "offset"

    def request(self, token: int | None) -> dict[str, Any]:
        return {"params": {**self.params, "limit": self.limit, self.offset_param: token or 0}}

    def read(self, body: Any, token: int | None, op: str) -> tuple[Page, int | None]:
        items = _listed(body, self.items_key, op)
        full = len(items) >= self.limit
        return Page(items=items, has_more=full), (token or 0) + len(items) if full else None
