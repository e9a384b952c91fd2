"""Sync engine test harness: real Cherry and CRM sandboxes, a real store, and `PracticeContext`s over them.

`sync_env` (on every store backend, through the `store` fixture) gives a `SyncEnv`, the shared `SandboxEnv`
(tests/fixtures/sandbox_env.py) with the sync's sizes and helpers; `sync_env_factory` builds more of them (other
sandbox sizes, faults, or a second store) in one test. Time is scaled so tests stay fast:
the CRM sandbox allows 100 requests per 1 s per location (HighLevel: 100 per 10 s) and the hook paces itself
at 95 per 1 s (`burst_window_seconds: 1` in the connection extras); retries back off from 10 ms, and a read
times out after 1 s.

`SyncEnv.canonical(i)` is the CRM location's final state without ids or timestamps: per contact the standard
fields, tags and the Cherry custom fields by fieldKey, and per opportunity its contact, name, status, value
and stage, all sorted, so two runs (or two sandboxes seeded alike) can be compared with `==`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from cherry_sync.context import PracticeContext
from cherry_sync.hooks.base import RetrySettings
from cherry_sync.store import SyncStore
from sandbox.cherry.testing import CherrySandbox
from tests.fixtures.sandbox_env import SandboxEnv, SandboxEnvs

# A fixed clock, so two sandboxes started in one test (or on different days) hold the same data.
SMALL = {"seed": 11, "practices": 2, "patients_per_practice": 60, "now": "2026-06-01T00:00:00Z"}


@dataclass
class SyncEnv(SandboxEnv):
    """Two sandboxes and a store; practice i is Cherry practice i synced into CRM location i."""

    cherry_settings: ClassVar[dict[str, Any]] = SMALL

    cache: dict[str, Any] = field(default_factory=dict)  # for tests' own memoised look-ups

    def make_ctx(
        self, index: int = 0, *, retry: RetrySettings | None = None, crm_extra: dict | None = None, **options: Any
    ) -> PracticeContext:
        """A fresh context (new hooks, so call counters start at zero) for practice `index`.

        `crm_extra` adds CRM connection extras (e.g. `{"max_in_flight": 1}`: one write at a time).

        Options are the registry's practice options (e.g. `opportunity={...}`); without any, the options of
        the last `make_ctx`/`practice` call for this index are kept.
        """
        if options:
            self.practice(index, **options)
        return self.context(index, retry=retry, crm_extra=crm_extra)

    # -- sources ---------------------------------------------------------------------------------

    def cherry_patients(self, index: int = 0, **params: Any) -> list[dict]:
        """What Cherry serves for the practice (GET /v1/patients, all pages)."""
        return self.cherry.fetch_all("/v1/patients", index, **params)

    # -- CRM state -------------------------------------------------------------------------------

    def crm_state(self, index: int = 0) -> dict:
        return self.crm.location_state(self.location_id(index), lists=True)

    def contacts(self, index: int = 0) -> list[dict]:
        return self.crm_state(index)["contacts"]

    def canonical(self, index: int = 0) -> dict:
        return canonical_state(self.crm_state(index))


def canonical_state(state: dict) -> dict:
    """The id- and timestamp-free view of a location's contacts and opportunities (see module docstring)."""
    keys = {f["id"]: f.get("fieldKey") for f in state.get("customFields", [])}
    contacts = {}
    rows = []
    for c in state.get("contacts", []):
        custom = {keys.get(item["id"], item["id"]): _plain(item.get("value")) for item in c.get("customFields", [])}
        row = {
            "firstName": c.get("firstName"),
            "lastName": c.get("lastName"),
            "email": (c.get("email") or None) and c["email"].lower(),
            "phone": c.get("phone"),
            "dateOfBirth": c.get("dateOfBirth"),
            "tags": sorted(c.get("tags") or []),
            "custom": dict(sorted(custom.items())),
        }
        contacts[c["id"]] = row
        rows.append(row)
    stage_names = {st["id"]: (p["name"], st["name"]) for p in state.get("pipelines", []) for st in p.get("stages", [])}
    opportunities = []
    for o in state.get("opportunities", []):
        owner = contacts.get(o.get("contactId"), {})
        opportunities.append(
            {
                "contact": (owner.get("email"), owner.get("phone")),
                "name": o.get("name"),
                "status": o.get("status"),
                "monetaryValue": _plain(o.get("monetaryValue")),
                "stage": stage_names.get(o.get("pipelineStageId")),
            }
        )
    return {
        "contacts": sorted(rows, key=_sort_key),
        "opportunities": sorted(opportunities, key=_sort_key),
        "custom_field_keys": sorted(k or "" for k in keys.values()),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _sort_key(row: dict) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def duplicates_by_contact_point(contacts: list[dict]) -> dict[str, int]:
    """Email or phone values held by more than one contact (should be empty)."""
    counts: Counter = Counter()
    for c in contacts:
        if c.get("email"):
            counts[f"email:{c['email'].lower()}"] += 1
        if c.get("phone"):
            counts[f"phone:{c['phone']}"] += 1
    return {k: n for k, n in counts.items() if n > 1}


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def sync_env_factory(store: SyncStore, sandbox_envs: SandboxEnvs) -> Callable[..., SyncEnv]:
    """`make(store=None, crm=None, cherry_of=None, **cherry_overrides)`: new sandboxes; the first env gets the
    test's store, later ones (or `store="sqlite"`) a fresh SQLite store of their own. `crm` overrides CRM sandbox
    settings; `cherry_of=env` reuses that env's Cherry sandbox (same source) with a fresh CRM."""
    test_store = store

    def make(
        store: SyncStore | str | None = None, crm: dict | None = None, cherry_of: SyncEnv | None = None, **cherry: Any
    ) -> SyncEnv:
        if not isinstance(store, SyncStore):
            store = "sqlite" if store == "sqlite" or sandbox_envs.built else test_store
        return sandbox_envs.build(SyncEnv, store=store, cherry=cherry, crm=crm, cherry_of=cherry_of)

    return make


@pytest.fixture
def sync_env(sync_env_factory) -> SyncEnv:
    """2 practices x 60 patients (seed 11) in Cherry, 2 CRM locations, the test's store."""
    return sync_env_factory()


# -- changing Cherry's data from a test (through the sandbox's own write path) ------------------


def _tick(state, seconds: int = 60) -> int:
    """Move the Cherry sandbox clock on (no simulated activity) and return the new time (epoch seconds)."""
    state.offset_seconds += seconds
    return state.now_epoch()


def edit_patient(cherry: CherrySandbox, patient_id: str, **changes: Any) -> None:
    """A new version of the patient with `changes`, announced by a `patient.refreshed` event."""
    state = cherry.state
    with state.lock:
        book = state.find_patient_book(patient_id)
        version = book.lives[patient_id].touch(_tick(state), **changes)
        book.write_patient(version)
        book.emit("patient.refreshed", version, version.updated_at)


def settle_payment(cherry: CherrySandbox, payment_id: str, kind: str, seed: int = 0) -> dict:
    """Cancel ("cancel"), fully refund ("refund") or partially refund ("partial") one payment, as the
    sandbox's simulator does (the patient's balance is restored and announced too)."""
    import random

    from sandbox.cherry.data import settle_payment as settle
    from sandbox.cherry.lifecycle import EVENT_FOR_STATUS

    state = cherry.state
    with state.lock:
        book = state.find_payment_book(payment_id)
        payment = book.payments.records[payment_id]
        t = _tick(state)
        changed, back = settle(random.Random(seed), payment, kind, t)
        book.write_payment(changed)
        book.emit(EVENT_FOR_STATUS[changed.status], changed, changed.updated_at)
        restored = book.lives[payment.patient_id].restore(t, back, payment.period)
        if restored is not None:
            book.write_patient(restored)
            book.emit("patient.refreshed", restored, restored.updated_at)
        return changed.to_json()


def state_diff(actual: dict, expected: dict) -> list[str]:
    """Readable differences between two canonical states (empty when equal)."""
    out: list[str] = []
    for part in ("contacts", "opportunities"):
        a = Counter(_sort_key(r) for r in actual[part])
        b = Counter(_sort_key(r) for r in expected[part])
        out += [f"{part} only in actual: {row}" for row in sorted((a - b).elements())]
        out += [f"{part} only in expected: {row}" for row in sorted((b - a).elements())]
    if actual["custom_field_keys"] != expected["custom_field_keys"]:
        out.append(f"custom fields differ: {actual['custom_field_keys']} != {expected['custom_field_keys']}")
    return out


def assert_same_state(actual: dict, expected: dict) -> None:
    diff = state_diff(actual, expected)
    assert not diff, "CRM states differ:\n" + "\n".join(diff[:20])


def shared_contact_points(patients: list[dict]) -> set[str]:
    """E-mails (lower-cased) and phones (E.164) that two or more Cherry patients share (families)."""
    from cherry_sync.domain import normalise_phone
    from cherry_sync.domain.contact_points import email_match_key

    counts: Counter = Counter()
    for row in patients:
        keys = set()
        if row.get("email"):
            keys.add(email_match_key(row["email"]))
        if row.get("phone"):
            keys.add(normalise_phone(row["phone"]))
        counts.update(k for k in keys if k)
    return {key for key, n in counts.items() if n > 1}


def family_contact_points(patients: list[dict]) -> set[str]:
    """Every e-mail and phone of the patients who share one with another patient (see `shared_contact_points`)."""
    from cherry_sync.domain import normalise_phone
    from cherry_sync.domain.contact_points import email_match_key

    shared = shared_contact_points(patients)
    points: set[str] = set()
    for row in patients:
        keys = {email_match_key(row["email"]) if row.get("email") else None}
        keys.add(normalise_phone(row["phone"]) if row.get("phone") else None)
        keys.discard(None)
        if keys & shared:
            points |= keys
    return points


def without_shared(state: dict, shared: set[str]) -> dict:
    """`state` minus contacts (and their opportunities) on a shared e-mail or phone: which family member
    holds the shared point (and whose contact is written without it) depends on who was synced first, so two
    runs in different orders may differ there. Pass `family_contact_points` to drop family members' contacts."""

    def family(row: dict) -> bool:
        return (row.get("email") or "").lower() in shared or row.get("phone") in shared

    return {
        **state,
        "contacts": [c for c in state["contacts"] if not family(c)],
        "opportunities": [o for o in state["opportunities"] if not set(o["contact"]) & shared],
    }


def new_payment(cherry: CherrySandbox, patient_id: str, amount: str = "500.00", seed: int = 0) -> dict:
    """A completed checkout by the patient now (as the simulator makes them), announced by its events."""
    import random
    from decimal import Decimal

    from sandbox.cherry.data import make_payment

    state = cherry.state
    with state.lock:
        book = state.find_patient_book(patient_id)
        life = book.lives[patient_id]
        t = _tick(state)
        book.invoice_counter += 1
        payment = make_payment(
            random.Random(seed), book.ids, book.practice, life, t, Decimal(amount), book.invoice_counter
        )
        book.payment_order.append(payment.id)
        book.write_payment(payment)
        book.emit("payment.completed", payment, payment.updated_at)
        version = life.spend(t, Decimal(amount))
        book.write_patient(version)
        book.emit("patient.refreshed", version, version.updated_at)
        return payment.to_json()
