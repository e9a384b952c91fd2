"""Finding a patient's CRM contact: by stored id, then email, phone, and name + date of birth.

Two strategies behind one interface, both over a `ContactIndex` (contacts by id, email, phone, name + DOB):
- `PrefetchedDirectory` (backfill): reads the location's contacts once with `POST /contacts/search`
  (500 per call) and matches in memory, so matching costs ~N/500 calls instead of one lookup per patient.
  It applies the CRM's own duplicate rules: email (case-insensitive) first, then phone (E.164).
- `LiveDirectory` (refresh): a few patients at a time. `prefetch` finds the contacts of a whole batch of new
  patients with one `POST /contacts/search` (an OR group over their e-mails, phones and birth dates); the
  duplicate lookup (`GET /contacts/search/duplicate`) is asked only for a point the batch search did not
  cover. A contact the store recorded after its last write is taken as known (`get(..., known=)`), so an
  update needs no read first.
Both remember contacts written during the run (a write not answered yet under a provisional id, replaced by the
real one with `forget` + `remember`), so two patients sharing an email in one run are caught, and a contact
moved off an email or phone no longer matches on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, Protocol

from cherry_sync.domain.contact_points import email_match_key, name_match_key, normalise_phone
from cherry_sync.domain.crm_values import parse_crm_date
from cherry_sync.domain.matching import MatchKeys
from cherry_sync.hooks.crm import AesthetixCrmHook

# What we keep of a contact: enough to match and to merge, nothing more (memory is per contact).
_KEPT = ("id", "firstName", "lastName", "email", "phone", "dateOfBirth", "customFields")
# New patients per `POST /contacts/search` in `LiveDirectory.prefetch`: three filters each (e-mail, phone, DOB).
PREFETCH_BATCH = 30


def slim(contact: dict[str, Any]) -> dict[str, Any]:
    return {key: contact.get(key) for key in _KEPT if contact.get(key) is not None}


class ContactDirectory(Protocol):
    """Where the sync looks contacts up. Implementations may cache; `remember` keeps them current."""

    def get(self, contact_id: str, known: dict | None = None) -> dict | None: ...

    def match(self, keys: MatchKeys) -> dict | None: ...

    def prefetch(self, wanted: Iterable[MatchKeys]) -> None: ...

    def remember(self, contact: dict) -> None: ...

    def forget(self, contact_id: str) -> None: ...


def _name_dob_key(contact: dict) -> tuple[str, str, date] | None:
    first = name_match_key(contact.get("firstName"))
    last = name_match_key(contact.get("lastName"))
    dob = parse_crm_date(contact.get("dateOfBirth"))
    return (first, last, dob) if first and last and dob else None


class ContactIndex:
    """Contacts by id, and by e-mail, phone and name + DOB key (the first contact seen keeps a key)."""

    def __init__(self) -> None:
        self._by_id: dict[str, dict] = {}
        self._by_email: dict[str, str] = {}
        self._by_phone: dict[str, str] = {}
        self._by_name_dob: dict[tuple[str, str, date], str] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def _keys(self, contact: dict) -> tuple[tuple[dict, Any], ...]:
        return (
            (self._by_email, email_match_key(contact.get("email"))),
            (self._by_phone, normalise_phone(contact.get("phone")) if contact.get("phone") else None),
            (self._by_name_dob, _name_dob_key(contact)),
        )

    def add(self, contact: dict, *, overwrite: bool = False) -> None:
        contact_id = contact["id"]
        previous = self._by_id.get(contact_id)
        if previous is not None:
            # A write moved this contact off an e-mail or phone: it no longer matches on the old one (the point is
            # free for a relative waiting for it).
            for (index, old), (_, new) in zip(self._keys(previous), self._keys(contact), strict=True):
                if old is not None and old != new and index.get(old) == contact_id:
                    del index[old]
        self._by_id[contact_id] = contact
        for index, key in self._keys(contact):
            # The CRM matches the oldest contact first; keep the first one seen unless told otherwise.
            if key is not None and (overwrite or key not in index):
                index[key] = contact_id

    def remove(self, contact_id: str) -> None:
        contact = self._by_id.pop(contact_id, None)
        if contact is None:
            return
        for index, key in self._keys(contact):
            if key is not None and index.get(key) == contact_id:
                del index[key]

    def get(self, contact_id: str) -> dict | None:
        return self._by_id.get(contact_id)

    def by_email(self, key: str | None) -> dict | None:
        return self._by_id.get(self._by_email[key]) if key is not None and key in self._by_email else None

    def by_phone(self, key: str | None) -> dict | None:
        return self._by_id.get(self._by_phone[key]) if key is not None and key in self._by_phone else None

    def by_name_dob(self, key: tuple[str, str, date] | None) -> dict | None:
        return self._by_id.get(self._by_name_dob[key]) if key is not None and key in self._by_name_dob else None

    def match(self, keys: MatchKeys) -> dict | None:
        return self.by_email(keys.email) or self.by_phone(keys.phone) or self.by_name_dob(keys.name_dob)


class PrefetchedDirectory:
    """All of a location's contacts, loaded on first use and indexed by id, email, phone and name + DOB."""

    def __init__(self, crm: AesthetixCrmHook) -> None:
        self._crm = crm
        self._loaded = False
        self._index = ContactIndex()

    @property
    def size(self) -> int:
        return len(self._index)

    def _load(self) -> None:
        if not self._loaded:
            for contact in self._crm.search_contacts():
                self._index.add(slim(contact))
            self._loaded = True

    def get(self, contact_id: str, known: dict | None = None) -> dict | None:
        """The contact as the CRM holds it (`known`, the store's record of the last write, is not needed: the
        whole location was read at the start of the run)."""
        self._load()
        return self._index.get(contact_id)

    def match(self, keys: MatchKeys) -> dict | None:
        self._load()
        return self._index.match(keys)

    def prefetch(self, wanted: Iterable[MatchKeys]) -> None:
        self._load()

    def remember(self, contact: dict) -> None:
        if self._loaded:
            self._index.add(slim(contact))

    def forget(self, contact_id: str) -> None:
        self._index.remove(contact_id)


class LiveDirectory:
    """Asks the CRM for what a batch needs (see the module docstring); remembers what it learns for the run."""

    def __init__(self, crm: AesthetixCrmHook) -> None:
        self._crm = crm
        self._index = ContactIndex()
        self._searched_emails: set[str] = set()
        self._searched_phones: set[str] = set()
        self._searched_dobs: set[date] = set()

    def get(self, contact_id: str, known: dict | None = None) -> dict | None:
        found = self._index.get(contact_id)
        if found is not None:
            return found
        if known is not None and known.get("id") == contact_id:
            return self._keep(known)
        # Nothing recorded for this contact (written before the store kept what it wrote): read it once.
        contact = self._crm.get_contact(contact_id)
        return self._keep(contact) if contact is not None else None

    def prefetch(self, wanted: Iterable[MatchKeys]) -> None:
        """One search per `PREFETCH_BATCH` patients for every contact holding one of their points or birth dates."""
        pending = [
            keys
            for keys in wanted
            if (keys.email and keys.email not in self._searched_emails)
            or (keys.phone and keys.phone not in self._searched_phones)
            or (keys.name_dob and keys.name_dob[2] not in self._searched_dobs)
        ]
        for start in range(0, len(pending), PREFETCH_BATCH):
            batch = pending[start : start + PREFETCH_BATCH]
            emails = sorted({k.email for k in batch if k.email})
            phones = sorted({k.phone for k in batch if k.phone})
            dobs = sorted({k.name_dob[2] for k in batch if k.name_dob})
            filters = (
                [{"field": "email", "operator": "eq", "value": e} for e in emails]
                + [{"field": "phone", "operator": "eq", "value": p} for p in phones]
                + [{"field": "dateOfBirth", "operator": "eq", "value": d.isoformat()} for d in dobs]
            )
            if not filters:
                continue
            for contact in self._crm.search_contacts(filters=[{"group": "OR", "filters": filters}]):
                self._keep(contact)
            self._searched_emails.update(emails)
            self._searched_phones.update(phones)
            self._searched_dobs.update(dobs)

    def match(self, keys: MatchKeys) -> dict | None:
        if keys.email:
            found = self._index.by_email(keys.email)
            if found is None and keys.email not in self._searched_emails:
                found = self._duplicate(email=keys.email)
            if found is not None:
                return found
        if keys.phone:
            found = self._index.by_phone(keys.phone)
            if found is None and keys.phone not in self._searched_phones:
                found = self._duplicate(phone=keys.phone)
            if found is not None:
                return found
        if keys.name_dob:
            found = self._index.by_name_dob(keys.name_dob)
            if found is None and keys.name_dob[2] not in self._searched_dobs:
                first, last, dob = keys.name_dob
                filters = [{"field": "dateOfBirth", "operator": "eq", "value": dob.isoformat()}]
                for contact in self._crm.search_contacts(filters=filters, page_limit=100):
                    kept = self._keep(contact)
                    if _name_dob_key(kept) == keys.name_dob and found is None:
                        found = kept
                self._searched_dobs.add(dob)
            return found
        return None

    def remember(self, contact: dict) -> None:
        self._keep(contact)

    def forget(self, contact_id: str) -> None:
        self._index.remove(contact_id)

    def _duplicate(self, *, email: str | None = None, phone: str | None = None) -> dict | None:
        found = self._crm.find_duplicate(email=email, phone=phone)
        return self._keep(found) if found else None

    def _keep(self, contact: dict, *, overwrite: bool = False) -> dict:
        kept = slim(contact)
        self._index.add(kept, overwrite=overwrite)
        return self._index.get(kept["id"]) or kept
