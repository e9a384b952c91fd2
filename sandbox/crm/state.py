"""Everything the CRM sandbox holds, per location, behind one lock.

A token belongs to exactly one location; every record belongs to one location. Handlers take the lock
for the whole read-modify-write (`with state.lock:`), which keeps upserts atomic under concurrent
clients the way the real API's duplicate check is (mostly) atomic.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox.crm.config import CrmSandboxConfig
from sandbox.crm.contacts import Contact, ContactBook
from sandbox.crm.custom_fields import FieldRegistry
from sandbox.crm.errors import CrmError, forbidden, not_found
from sandbox.crm.ids import IdFactory
from sandbox.crm.oauth import COMPANY_ID, OAuthState

PATIENT_JOURNEY = ("Consultation", "Treatment Planned", "Financing", "Booked", "Completed")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class LocationSettings:
    """The location settings that change API behaviour."""

    allow_duplicate_contact: bool = False
    allow_duplicate_opportunity: bool = False
    # Which field wins when email and phone match different contacts ("Allow Duplicate Contact" setup).
    duplicate_priority: tuple[str, ...] = ("email", "phone")

    def render(self) -> dict[str, Any]:
        return {
            "allowDuplicateContact": self.allow_duplicate_contact,
            "allowDuplicateOpportunity": self.allow_duplicate_opportunity,
            "allowFacebookNameMerge": False,
            "disableContactTimezone": False,
            "duplicateContactPriority": list(self.duplicate_priority),
        }


@dataclass
class Pipeline:
    """An opportunity pipeline with ordered stages ({id, name, position})."""

    id: str
    name: str
    location_id: str
    stages: list[dict[str, Any]]

    def stage(self, stage_id: str) -> dict[str, Any] | None:
        return next((s for s in self.stages if s["id"] == stage_id), None)

    def render(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "locationId": self.location_id,
            "stages": [dict(s) for s in self.stages],
            "showInFunnel": True,
            "showInPieChart": True,
        }


@dataclass
class Location:
    """One sub-account (practice) and all its data."""

    id: str
    name: str
    token: str
    settings: LocationSettings
    contacts: ContactBook
    timezone: str = "America/New_York"
    active: bool = True  # False: suspended by the agency; every call with its tokens answers 400
    fields: FieldRegistry = field(default_factory=FieldRegistry)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    opportunities: dict[str, dict[str, Any]] = field(default_factory=dict)
    opportunities_by_contact: dict[str, list[str]] = field(default_factory=dict)
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    media_bytes: dict[str, bytes] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    conversations: dict[str, str] = field(default_factory=dict)  # contact id -> conversation id

    def render(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "companyId": COMPANY_ID,
            "name": self.name,
            "country": "US",
            "timezone": self.timezone,
            "settings": self.settings.render(),
        }

    def contact(self, contact_id: str) -> Contact:
        found = self.contacts.get(contact_id)
        if found is None:
            raise not_found(f"Contact with id {contact_id} not found")
        return found


class CrmState:
    """All locations, tokens (PITs here, OAuth in `oauth`) and sandbox switches. Reachable as `app.state.crm`."""

    def __init__(self, config: CrmSandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.ids = IdFactory(config.seed, "records")
        self._location_ids = IdFactory(config.seed, "locations")
        self.search_lag_seconds = config.search_lag_seconds
        self.locations: dict[str, Location] = {}
        self.tokens: dict[str, str] = {}
        self.poisoned: set[str] = set()
        self.oauth = OAuthState.seeded(config.seed, config.oauth_access_token_ttl_seconds)
        zones = config.location_timezones
        for n in range(1, config.locations + 1):
            self.add_location(name=f"Aesthetix Demo Practice {n}", timezone=zones[(n - 1) % len(zones)])

    # --- locations and tokens -------------------------------------------------------------------

    def add_location(
        self,
        location_id: str | None = None,
        token: str | None = None,
        name: str | None = None,
        allow_duplicate_contact: bool | None = None,
        allow_duplicate_opportunity: bool | None = None,
        timezone: str | None = None,
    ) -> Location:
        with self.lock:
            location_id = location_id or self._location_ids.record_id()
            token = token or self._location_ids.token()
            if location_id in self.locations:
                raise CrmError(409, f"Location {location_id} already exists")
            if token in self.tokens:
                raise CrmError(409, "Token already belongs to another location")
            settings = LocationSettings(
                allow_duplicate_contact=self.config.allow_duplicate_contacts
                if allow_duplicate_contact is None
                else allow_duplicate_contact,
                allow_duplicate_opportunity=self.config.allow_duplicate_opportunities
                if allow_duplicate_opportunity is None
                else allow_duplicate_opportunity,
            )
            loc = Location(
                id=location_id,
                name=name or f"Practice {location_id[:6]}",
                token=token,
                settings=settings,
                contacts=ContactBook(search_lag_seconds=self.search_lag_seconds),
                timezone=timezone or self.config.location_timezones[0],
            )
            self.locations[location_id] = loc
            self.tokens[token] = location_id
            self.oauth.location_added(location_id)
            if self.config.seed_pipelines:
                self.add_pipeline(loc, "Patient Journey", PATIENT_JOURNEY)
            return loc

    def add_pipeline(self, loc: Location, name: str, stage_names: tuple[str, ...] | list[str]) -> Pipeline:
        with self.lock:
            stages = [{"id": self.ids.uuid(), "name": s, "position": i} for i, s in enumerate(stage_names)]
            pipeline = Pipeline(self.ids.record_id(), name, loc.id, stages)
            loc.pipelines[pipeline.id] = pipeline
            return pipeline

    def location_for_token(self, token: str | None) -> str | None:
        return self.tokens.get(token) if token else None

    def location(self, location_id: str) -> Location:
        loc = self.locations.get(location_id)
        if loc is None:
            raise not_found(f"Location with id {location_id} not found")
        return loc

    def set_search_lag(self, seconds: float) -> None:
        with self.lock:
            self.search_lag_seconds = seconds
            for loc in self.locations.values():
                loc.contacts.search_lag_seconds = seconds

    # --- ownership checks -------------------------------------------------------------------------

    def owner_of_contact(self, contact_id: str) -> str | None:
        """Location holding `contact_id` (a dict probe per location; only used on the miss path)."""
        for loc in self.locations.values():
            if contact_id in loc.contacts.contacts:
                return loc.id
        return None

    def contact_of(self, loc: Location, contact_id: str) -> Contact:
        """`contact_id` in the caller's location: 404 when unknown, 403 when another location's."""
        found = loc.contacts.get(contact_id)
        if found is not None:
            return found
        if self.owner_of_contact(contact_id) is not None:
            raise forbidden()
        raise not_found(f"Contact with id {contact_id} not found")

    def record_of(self, loc: Location, kind: str, record_id: str) -> dict[str, Any]:
        """An opportunity or media object of the caller's location: 404 unknown, 403 foreign."""
        own = getattr(loc, kind).get(record_id)
        if own is not None:
            return own
        if any(record_id in getattr(other, kind) for other in self.locations.values()):
            raise forbidden()
        label = "Opportunity" if kind == "opportunities" else "File"
        raise not_found(f"{label} with id {record_id} not found")
