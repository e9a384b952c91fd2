"""One practice's data as its API key sees it, and the single write path that keeps it consistent.

Every write of a patient or payment goes through `write_patient` / `write_payment`, which file the new
version in the paging index under a fresh sequence number; `emit` appends to the event feed. Keeping the
two apart lets `/_sandbox/advance` deliver events late or twice, as the real feed does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sandbox.cherry.lifecycle import PatientLife
from sandbox.cherry.models import Application, Event, IdMaker, PatientVersion, PaymentVersion, Practice
from sandbox.cherry.people import PeopleFactory
from sandbox.cherry.seqindex import SeqIndex


class PracticeBook:
    """Patients, payments, the event feed and applications of one practice."""

    def __init__(self, practice: Practice, ids: IdMaker, next_seq: Callable[[], int]) -> None:
        self.practice = practice
        self.ids = ids
        self.next_seq = next_seq
        self.patients = SeqIndex()
        self.payments = SeqIndex()
        self.lives: dict[str, PatientLife] = {}
        self.patient_order: list[str] = []  # ids in creation order, for random picks
        self.payment_order: list[str] = []
        self.events: list[Event] = []
        self.applications: list[Application] = []
        self.malformed: dict[str, tuple[str, str]] = {}  # record id -> (object_type, kind)
        self.invoice_counter = 0
        self.people: PeopleFactory | None = None  # keeps phones/e-mails unique for patients added later
        self.expiries: list[tuple[int, str]] = []  # heap of (approval expiry, patient id) for ACTIVE patients
        # Wall-clock time each event was emitted at run time (not seeded ones): latency benchmarks start here.
        self.emitted_wall: dict[str, float] = {}

    # -- writes ------------------------------------------------------------------------------------
    def write_patient(self, version: PatientVersion) -> None:
        self.patients.put(version.id, version, self.next_seq(), version.updated_at)
        life = self.lives.get(version.id)
        if life is not None:
            life.version = version

    def write_payment(self, version: PaymentVersion) -> None:
        self.payments.put(version.id, version, self.next_seq(), version.updated_at)

    def emit(self, event_type: str, ref: PatientVersion | PaymentVersion | None, occurred_at: str) -> Event:
        patient_id = None
        if isinstance(ref, PatientVersion):
            patient_id = ref.id
        elif isinstance(ref, PaymentVersion):
            patient_id = ref.patient_id
        event = Event(self.ids("evt", 96), event_type, occurred_at, patient_id, ref)
        self.events.append(event)
        self.emitted_wall[event.id] = time.time()
        return event

    def redeliver(self, event: Event) -> None:
        """At-least-once delivery: the same event (same id) appears again later in the feed."""
        self.events.append(event)

    # -- reads -------------------------------------------------------------------------------------
    def patient(self, patient_id: str) -> PatientVersion | None:
        return self.patients.get(patient_id)

    def payment(self, payment_id: str) -> PaymentVersion | None:
        return self.payments.get(payment_id)
