"""Store test helpers: a registered practice to hang rows on, and row builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cherry_sync.registry import PracticeConfig
from cherry_sync.store import PatientSnapshot, PaymentSnapshot, SyncStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_practice(slug: str = "glow-aesthetics", **overrides) -> PracticeConfig:
    fields = {
        "slug": slug,
        "display_name": slug.replace("-", " ").title(),
        "timezone": "America/New_York",
        "cherry_conn_id": f"cherry_{slug.replace('-', '_')}",
        "crm_conn_id": f"crm_{slug.replace('-', '_')}",
    }
    return PracticeConfig.model_validate(fields | overrides)


def patient(patient_id: str, minutes: int = 0, *, status: str = "active", balance: str = "1500.00") -> PatientSnapshot:
    """A patient snapshot whose source time is T0 + minutes (synthetic data, no real person)."""
    return PatientSnapshot(
        patient_id=patient_id,
        snapshot={"id": patient_id, "status": status, "version": minutes},
        source_updated_at=T0 + timedelta(minutes=minutes),
        account_status=status,
        balance_available=Decimal(balance),
    )


def payment(payment_id: str, patient_id: str = "p1", minutes: int = 0, *, status: str = "FUNDED") -> PaymentSnapshot:
    return PaymentSnapshot(
        payment_id=payment_id,
        patient_id=patient_id,
        snapshot={"id": payment_id, "status": status, "version": minutes},
        status=status,
        amount=Decimal("2500.00"),
        refund_amount=Decimal("0"),
        source_updated_at=T0 + timedelta(minutes=minutes),
    )


@pytest.fixture
def slug(store: SyncStore) -> str:
    """A practice registered in the store (data rows need one: they reference practices)."""
    store.sync_practices([make_practice("glow-aesthetics")])
    return "glow-aesthetics"
