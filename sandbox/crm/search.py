"""POST /contacts/search: filters, sort, page / searchAfter paging over the (lagging) search view.

Filtering and sorting a location is O(n log n), so the sorted result is cached per location and query
until the next write; walking all pages of an unchanged location is then O(page size) per request.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from functools import cmp_to_key
from typing import Any

from sandbox.crm import normalize
from sandbox.crm.contacts import Contact
from sandbox.crm.errors import bad_request, unprocessable
from sandbox.crm.state import Location

MAX_PAGE_WINDOW = 10_000  # page * pageLimit past this needs searchAfter, as on the real index
DEFAULT_SORT = (("dateAdded", "desc"),)
OPERATORS = ("eq", "not_eq", "contains", "not_contains", "exists", "not_exists", "range")

Predicate = Callable[[Contact], bool]


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


# Field name -> how to read it from a contact. Text fields compare case-insensitively.
FIELDS: dict[str, Callable[[Contact], Any]] = {
    "id": lambda c: c.id,
    "email": lambda c: _lower(c.email),
    "phone": lambda c: c.phone,
    "tags": lambda c: c.tags,
    "firstName": lambda c: _lower(c.first_name),
    "lastName": lambda c: _lower(c.last_name),
    "firstNameLowerCase": lambda c: _lower(c.first_name),
    "lastNameLowerCase": lambda c: _lower(c.last_name),
    "fullNameLowerCase": lambda c: _lower(c.full_name),
    "dateOfBirth": lambda c: c.date_of_birth,
    "source": lambda c: _lower(c.source),
    "dateAdded": lambda c: c.date_added,
    "dateUpdated": lambda c: c.date_updated,
}
TEXT_FIELDS = {"email", "firstName", "lastName", "firstNameLowerCase", "lastNameLowerCase", "fullNameLowerCase"}
TEXT_FIELDS |= {"source", "tags"}
SORT_FIELDS = ("dateAdded", "dateUpdated", "firstNameLowerCase", "lastNameLowerCase", "email", "id")


def _reader(field: str, loc: Location) -> Callable[[Contact], Any]:
    if field in FIELDS:
        return FIELDS[field]
    if field.startswith("customFields."):
        field_id = field.split(".", 1)[1]
        if field_id not in loc.fields.by_id:
            raise unprocessable(f"filters: custom field {field_id} does not exist in this location")
        return lambda c: (c.custom_fields or {}).get(field_id)
    raise unprocessable(f"filters: field {field} is not supported")


def _canon(field: str, value: Any) -> Any:
    """The filter value in the stored form of `field`."""
    if isinstance(value, list):
        return [_canon(field, v) for v in value]
    if not isinstance(value, str):
        return value
    if field in TEXT_FIELDS:
        return value.strip().lower()
    if field == "phone":
        return normalize.phone_e164(value) or value
    if field == "dateOfBirth":
        return normalize.date_of_birth(value)
    if field in ("dateAdded", "dateUpdated"):
        return _epoch_ms(value)
    return value


def _epoch_ms(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError as exc:
            raise unprocessable(f"filters: {value} is not a date") from exc
    return value


def _values(stored: Any) -> list[Any]:
    if stored is None:
        return []
    if isinstance(stored, list | tuple):
        return list(stored)
    return [stored]


def _equals(stored: Any, wanted: Any) -> bool:
    wanted_list = wanted if isinstance(wanted, list) else [wanted]
    have = _values(stored)
    if isinstance(stored, str) and not isinstance(wanted, list):
        return stored == wanted
    return any(w in have for w in wanted_list) or stored == wanted


def _contains(stored: Any, wanted: Any) -> bool:
    needle = str(wanted).lower()
    return any(needle in str(v).lower() for v in _values(stored))


def _in_range(stored: Any, bounds: Any, field: str) -> bool:
    if not isinstance(bounds, dict) or not set(bounds) <= {"gt", "gte", "lt", "lte"}:
        raise unprocessable("filters: range value must be an object with gt, gte, lt or lte")
    if stored is None:
        return False
    for op, raw in bounds.items():
        bound = _canon(field, raw)
        if isinstance(bound, str) and isinstance(stored, int | float):
            bound = normalize.date_to_epoch_ms(bound)  # a DATE custom field bounded by 'YYYY-MM-DD'
            if bound is None:
                raise unprocessable(f"filters: range bound {raw} is not a number or date")
        try:
            ok = {
                "gt": stored > bound,
                "gte": stored >= bound,
                "lt": stored < bound,
                "lte": stored <= bound,
            }[op]
        except TypeError:
            return False
        if not ok:
            return False
    return True


def compile_filters(filters: list[dict[str, Any]], loc: Location, group: str = "AND") -> Predicate:
    """A predicate for a filter list; items are `{field, operator, value}` or `{group, filters}`."""
    parts: list[Predicate] = []
    for i, item in enumerate(filters):
        if not isinstance(item, dict):
            raise unprocessable(f"filters.{i} must be an object")
        if "group" in item:
            if item["group"] not in ("AND", "OR") or not isinstance(item.get("filters"), list):
                raise unprocessable(f"filters.{i}: group must be AND or OR with a filters array")
            parts.append(compile_filters(item["filters"], loc, item["group"]))
            continue
        unknown = set(item) - {"field", "operator", "value"}
        if unknown:
            raise unprocessable(*(f"filters.{i}.property {k} should not exist" for k in sorted(unknown)))
        field, op = item.get("field"), item.get("operator")
        if not isinstance(field, str):
            raise unprocessable(f"filters.{i}.field must be a string")
        if op not in OPERATORS:
            raise unprocessable(f"filters.{i}.operator must be one of the following values: {', '.join(OPERATORS)}")
        if op not in ("exists", "not_exists") and "value" not in item:
            raise unprocessable(f"filters.{i}.value should not be empty")
        parts.append(_one(_reader(field, loc), field, op, item.get("value")))
    if group == "OR":
        return lambda c: any(p(c) for p in parts)
    return lambda c: all(p(c) for p in parts)


def _one(read: Callable[[Contact], Any], field: str, op: str, raw: Any) -> Predicate:
    value = raw if op == "range" else _canon(field, raw)
    if op == "eq":
        return lambda c: _equals(read(c), value)
    if op == "not_eq":
        return lambda c: not _equals(read(c), value)
    if op == "contains":
        return lambda c: _contains(read(c), value)
    if op == "not_contains":
        return lambda c: not _contains(read(c), value)
    if op == "exists":
        return lambda c: bool(_values(read(c)))
    if op == "not_exists":
        return lambda c: not _values(read(c))
    return lambda c: _in_range(read(c), value, field)


def _query_predicate(query: str) -> Predicate:
    needle = query.strip().lower()
    # A query that is a phone number (digits and formatting only) also matches phones by digits.
    digits = "".join(ch for ch in needle if ch not in "+-() .")
    digits = digits if digits.isdigit() and len(digits) >= 3 else ""

    def match(c: Contact) -> bool:
        for text in (c.full_name, c.email, c.first_name, c.last_name):
            if text and needle in text.lower():
                return True
        return bool(digits and c.phone and digits in c.phone)

    return match


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else 0)


def _sort_values(c: Contact, sort: tuple[tuple[str, str], ...]) -> list[Any]:
    return [FIELDS[f](c) for f, _ in sort] + [c.id]


def _cmp(a: list[Any], b: list[Any], sort: tuple[tuple[str, str], ...]) -> int:
    """Order of two searchAfter value lists (None sorts lowest, the id breaks ties ascending)."""
    for (_, direction), x, y in zip(sort, a, b, strict=False):
        kx, ky = (x is not None, x), (y is not None, y)
        if kx != ky:
            try:
                less = kx < ky
            except TypeError:
                less = str(kx) < str(ky)
            result = -1 if less else 1
            return result if direction == "asc" else -result
    ida, idb = a[-1], b[-1]
    return (ida > idb) - (ida < idb)


class SearchCache:
    """The last few sorted results per location, valid until the location's next write."""

    def __init__(self, size: int = 8) -> None:
        self._entries: OrderedDict[tuple, list[Contact]] = OrderedDict()
        self._size = size

    def get(self, key: tuple) -> list[Contact] | None:
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
        return hit

    def put(self, key: tuple, value: list[Contact]) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


def _sorted_matches(loc: Location, body: Any, sort: tuple[tuple[str, str], ...], cache: SearchCache) -> list[Contact]:
    loc.contacts.apply_due()  # first, so that the version in the cache key covers index catch-up
    key = (loc.id, loc.contacts.version, json.dumps([body.filters, body.query, sort], sort_keys=True, default=str))
    hit = cache.get(key)
    if hit is not None:
        return hit
    candidates = loc.contacts.searchable()
    predicates: list[Predicate] = []
    if body.filters:
        predicates.append(compile_filters(body.filters, loc))
    if body.query:
        predicates.append(_query_predicate(body.query))
    matches = [c for c in candidates if all(p(c) for p in predicates)]
    # Stable multi-pass sort: id ascending as the tie-breaker, then each sort field, last one first.
    matches.sort(key=lambda c: c.id)
    for field, direction in reversed(sort):
        read = FIELDS[field]
        matches.sort(key=lambda c, read=read: _sort_key(read(c)), reverse=direction == "desc")
    cache.put(key, matches)
    return matches


def search(loc: Location, body: Any, cache: SearchCache) -> dict[str, Any]:
    """Run a validated SearchContacts body; returns (page of contacts, total) before rendering."""
    sort = tuple((s.field, s.direction) for s in body.sort) if body.sort else DEFAULT_SORT
    for field, _ in sort:
        if field not in SORT_FIELDS:
            raise unprocessable(f"sort.field must be one of the following values: {', '.join(SORT_FIELDS)}")
    if body.page is not None and body.searchAfter is not None:
        raise unprocessable("page and searchAfter cannot be used together; omit page when using searchAfter")
    matches = _sorted_matches(loc, body, sort, cache)
    limit = body.pageLimit
    if body.searchAfter is not None:
        if len(body.searchAfter) != len(sort) + 1:
            raise unprocessable(f"searchAfter must have {len(sort) + 1} values (the sort values and the id)")
        start = _after(matches, list(body.searchAfter), sort)
    else:
        page = body.page or 1
        if page * limit > MAX_PAGE_WINDOW:
            raise bad_request(f"page * pageLimit cannot exceed {MAX_PAGE_WINDOW}; use searchAfter to read further")
        start = (page - 1) * limit
    chosen = matches[start : start + limit]
    return {"page": chosen, "total": len(matches), "sort": sort}


def _after(matches: list[Contact], cursor: list[Any], sort: tuple[tuple[str, str], ...]) -> int:
    """Index of the first contact ordered strictly after `cursor` (binary search)."""
    key = cmp_to_key(lambda a, b: _cmp(a, b, sort))
    target = key(cursor)
    lo, hi = 0, len(matches)
    while lo < hi:
        mid = (lo + hi) // 2
        if key(_sort_values(matches[mid], sort)) <= target:
            lo = mid + 1
        else:
            hi = mid
    return lo


def search_after_values(c: Contact, sort: tuple[tuple[str, str], ...]) -> list[Any]:
    return _sort_values(c, sort)
