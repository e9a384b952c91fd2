"""Contacts of one location: records, the email/phone indexes used for duplicate matching, and the
lagging view that POST /contacts/search reads.

Records are replaced, never mutated, on every write (copy-on-write). That makes the search index lag
cheap: a pending index update just keeps pointing at the previous record object until it is due.
Memory per contact stays modest: a slotted record, optional fields only when set, dates as epoch ms.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from sandbox.crm import normalize
from sandbox.crm.custom_fields import FieldRegistry


@dataclass(slots=True)
class Contact:
    """One contact as stored. `extra` holds the rarely used fields (address, timezone, dnd, ...)."""

    id: str
    location_id: str
    date_added: int
    date_updated: int
    first_name: str | None = None
    last_name: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    date_of_birth: str | None = None
    source: str | None = None
    tags: tuple[str, ...] = ()
    custom_fields: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None

    @property
    def full_name(self) -> str | None:
        if self.name:
            return self.name
        joined = " ".join(p for p in (self.first_name, self.last_name) if p)
        return joined or None

    def render(self, fields: FieldRegistry) -> dict[str, Any]:
        """The contact as GET /contacts/{id} returns it (absent fields are left out, as the API does)."""
        out: dict[str, Any] = {"id": self.id, "locationId": self.location_id}
        optional = {
            "firstName": self.first_name,
            "lastName": self.last_name,
            "name": self.full_name,
            "firstNameLowerCase": self.first_name.lower() if self.first_name else None,
            "lastNameLowerCase": self.last_name.lower() if self.last_name else None,
            "fullNameLowerCase": self.full_name.lower() if self.full_name else None,
            "email": self.email,
            "emailLowerCase": self.email.lower() if self.email else None,
            "phone": self.phone,
            "dateOfBirth": self.date_of_birth,
            "source": self.source,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.extra:
            out.update(self.extra)
        out["type"] = "lead"
        out["tags"] = list(self.tags)
        # Reads carry {id, value} only; values of deleted fields are dropped lazily here.
        out["customFields"] = [
            {"id": fid, "value": value} for fid, value in (self.custom_fields or {}).items() if fid in fields.by_id
        ]
        out["dateAdded"] = normalize.iso_ms(self.date_added)
        out["dateUpdated"] = normalize.iso_ms(self.date_updated)
        return out


class KeyIndex:
    """Lookup key -> contact ids, oldest first. One id per key is the norm; lists only for duplicates."""

    def __init__(self) -> None:
        self._one: dict[str, str] = {}
        self._more: dict[str, list[str]] = {}

    def first(self, key: str | None) -> str | None:
        return self._one.get(key) if key else None

    def add(self, key: str | None, contact_id: str) -> None:
        if not key:
            return
        if key not in self._one:
            self._one[key] = contact_id
        elif self._one[key] != contact_id:
            self._more.setdefault(key, []).append(contact_id)

    def remove(self, key: str | None, contact_id: str) -> None:
        if not key:
            return
        if self._one.get(key) == contact_id:
            rest = self._more.get(key)
            if rest:
                self._one[key] = rest.pop(0)
                if not rest:
                    del self._more[key]
            else:
                del self._one[key]
        elif key in self._more and contact_id in self._more[key]:
            self._more[key].remove(contact_id)
            if not self._more[key]:
                del self._more[key]


def phone_key(phone: str | None) -> str | None:
    """Phones match on the E.164 form (all digits, so formatting never matters); the stored string is
    the key itself, which saves a string per contact."""
    return phone or None


def email_key(email: str | None) -> str | None:
    if not email:
        return None
    key = normalize.email_key(email)
    return email if key == email else key  # reuse the stored string when it is already canonical


@dataclass
class _Pending:
    due: float
    contact_id: str
    seq: int


@dataclass
class ContactBook:
    """All contacts of one location. Callers hold the state lock."""

    search_lag_seconds: float = 0.0
    contacts: dict[str, Contact] = field(default_factory=dict)
    by_email: KeyIndex = field(default_factory=KeyIndex)
    by_phone: KeyIndex = field(default_factory=KeyIndex)
    # What search still sees for contacts whose index update is not due yet (None: not indexed yet).
    stale: dict[str, Contact | None] = field(default_factory=dict)
    pending: deque = field(default_factory=deque)
    latest_seq: dict[str, int] = field(default_factory=dict)
    version: int = 0
    _seq: int = 0

    def get(self, contact_id: str) -> Contact | None:
        return self.contacts.get(contact_id)

    def find_duplicate(
        self, email: str | None, phone: str | None, order: tuple[str, ...]
    ) -> tuple[Contact, str] | None:
        """The contact an upsert/create would match, and which field matched, in the location's priority."""
        for fieldname in order:
            if fieldname == "email":
                cid = self.by_email.first(email_key(email))
            else:
                cid = self.by_phone.first(phone_key(phone))
            if cid is not None:
                return self.contacts[cid], fieldname
        return None

    def put(self, new: Contact) -> None:
        """Store a created or replaced record and keep indexes and the lagging search view in step."""
        old = self.contacts.get(new.id)
        if old is not None:
            if email_key(old.email) != email_key(new.email):
                self.by_email.remove(email_key(old.email), old.id)
                self.by_email.add(email_key(new.email), new.id)
            if phone_key(old.phone) != phone_key(new.phone):
                self.by_phone.remove(phone_key(old.phone), old.id)
                self.by_phone.add(phone_key(new.phone), new.id)
        else:
            self.by_email.add(email_key(new.email), new.id)
            self.by_phone.add(phone_key(new.phone), new.id)
        self._lag(new.id, old)
        self.contacts[new.id] = new
        self.version += 1

    def delete(self, contact_id: str) -> Contact | None:
        old = self.contacts.pop(contact_id, None)
        if old is not None:
            self.by_email.remove(email_key(old.email), old.id)
            self.by_phone.remove(phone_key(old.phone), old.id)
            self._lag(contact_id, old)
            self.version += 1
        return old

    def _lag(self, contact_id: str, previous: Contact | None) -> None:
        if self.search_lag_seconds <= 0:
            return
        if contact_id not in self.stale:
            self.stale[contact_id] = previous
        self._seq += 1
        self.latest_seq[contact_id] = self._seq
        self.pending.append(_Pending(time.monotonic() + self.search_lag_seconds, contact_id, self._seq))

    def searchable(self) -> list[Contact]:
        """Contacts as the search index sees them right now (lagging behind writes)."""
        self.apply_due()
        if not self.stale:
            return list(self.contacts.values())
        out = []
        for cid, contact in self.contacts.items():
            if cid in self.stale:
                seen = self.stale[cid]
                if seen is not None:
                    out.append(seen)
            else:
                out.append(contact)
        out.extend(c for cid, c in self.stale.items() if c is not None and cid not in self.contacts)
        return out

    def apply_due(self) -> None:
        """Let index updates whose lag has passed become visible (bumps `version` if any did)."""
        now = time.monotonic()
        changed = False
        while self.pending and self.pending[0].due <= now:
            p = self.pending.popleft()
            # Only the newest write of a contact ends its stale period.
            if self.latest_seq.get(p.contact_id) == p.seq:
                del self.latest_seq[p.contact_id]
                self.stale.pop(p.contact_id, None)
                changed = True
        if changed:
            self.version += 1


def updated(contact: Contact, **changes: Any) -> Contact:
    return replace(contact, **changes)
