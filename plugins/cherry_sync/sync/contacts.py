"""Finding a patient's CRM contact: by stored id, then email, phone, and name + date of birth.

Two strategies behind one interface:
- `PrefetchedDirectory` (backfill): reads the location's contacts once with `POST /contacts/search`
  (500 per call) and matches in memory, so matching costs ~N/500 calls instead of one lookup per patient.
  It applies the CRM's own duplicate rules: email (case-insensitive) first, then phone (E.164).
- `LiveDirectory` (refresh): a few patients at a time, so it asks the CRM directly: `GET /contacts/{id}`,
  the duplicate lookup by email then phone, and a search on name + date of birth.
Both remember contacts written during the run, so two patients sharing an email in one run are caught.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from cherry_sync.domain.contact_points import email_match_key, name_match_key, normalise_phone
from cherry_sync.domain.crm_values import parse_crm_date
from cherry_sync.domain.matching import MatchKeys
from cherry_sync.hooks.crm import AesthetixCrmHook

# What we keep of a contact: enough to match and to merge, nothing more (memory is per contact).
_KEPT = ("id", "firstName", "lastName", "email", "phone", "dateOfBirth", "customFields")


def slim(contact: dict[str, Any]) -> dict[str, Any]:
    return {key: contact.get(key) for key in _KEPT if contact.get(key) is not None}


class ContactDirectory(Protocol):
    """Where the sync looks contacts up. Implementations may cache; `remember` keeps them current."""

    def get(self, contact_id: str) -> dict | None: ...

    def match(self, keys: MatchKeys) -> dict | None: ...

    def remember(self, contact: dict) -> None: ...


def _name_dob_key(contact: dict) -> tuple[str, str, date] | None:
    first = name_match_key(contact.get("firstName"))
    last = name_match_key(contact.get("lastName"))
    dob = parse_crm_date(contact.get("dateOfBirth"))
    return (first, last, dob) if first and last and dob else None


class PrefetchedDirectory:
    """All of a location's contacts, loaded on first use and indexed by id, email, phone and name + DOB."""

    def __init__(self, crm: AesthetixCrmHook) -> None:
        self._crm = crm
        self._loaded = False
        self._by_id: dict[str, dict] = {}
        self._by_email: dict[str, str] = {}
        self._by_phone: dict[str, str] = {}
        self._by_name_dob: dict[tuple[str, str, date], str] = {}

    @property
    def size(self) -> int:
        return len(self._by_id)

    def _load(self) -> None:
        if not self._loaded:
            for contact in self._crm.search_contacts():
                self._index(slim(contact), overwrite=False)
            self._loaded = True

    def _index(self, contact: dict, *, overwrite: bool) -> None:
        contact_id = contact["id"]
        self._by_id[contact_id] = contact
        keys = (
            (self._by_email, email_match_key(contact.get("email"))),
            (self._by_phone, normalise_phone(contact.get("phone")) if contact.get("phone") else None),
            (self._by_name_dob, _name_dob_key(contact)),
        )
        for index, key in keys:
            # The CRM matches the oldest contact first; keep the first one seen unless told otherwise.
            if key is not None and (overwrite or key not in index):
                index[key] = contact_id

    def get(self, contact_id: str) -> dict | None:
        self._load()
        return self._by_id.get(contact_id)

    def match(self, keys: MatchKeys) -> dict | None:
        self._load()
        for index, key in (
            (self._by_email, keys.email),
            (self._by_phone, keys.phone),
            (self._by_name_dob, keys.name_dob),
        ):
            if key is not None and key in index:
                return self._by_id.get(index[key])
        return None

    def remember(self, contact: dict) -> None:
        if self._loaded:
            self._index(slim(contact), overwrite=False)


class LiveDirectory:
    """Asks the CRM for each lookup; caches what it learns for the rest of the run."""

    def __init__(self, crm: AesthetixCrmHook) -> None:
        self._crm = crm
        self._cache: dict[str, dict] = {}

    def get(self, contact_id: str) -> dict | None:
        if contact_id not in self._cache:
            found = self._crm.get_contact(contact_id)
            if found is None:
                return None
            self._cache[contact_id] = slim(found)
        return self._cache[contact_id]

    def match(self, keys: MatchKeys) -> dict | None:
        for email, phone in ((keys.email, None), (None, keys.phone)):
            if email or phone:
                found = self._crm.find_duplicate(email=email, phone=phone)
                if found:
                    return self._keep(found)
        if keys.name_dob:
            first, last, dob = keys.name_dob
            filters = [{"field": "dateOfBirth", "operator": "eq", "value": dob.isoformat()}]
            for contact in self._crm.search_contacts(filters=filters, page_limit=100):
                if _name_dob_key(contact) == keys.name_dob:
                    return self._keep(contact)
        return None

    def remember(self, contact: dict) -> None:
        self._keep(contact)

    def _keep(self, contact: dict) -> dict:
        kept = slim(contact)
        self._cache[kept["id"]] = kept
        return kept
