"""How a patient's Cherry account changes, shared by the seeded history and by `/_sandbox/advance`.

`PatientLife` holds a patient's current version plus the hidden state behind it (which approval is
current, how many purchases were made, the patient's dice for the eligibility flags). Each transition
returns a new version with the derived fields (balance_status, eligibility) recomputed, so every version
ever served is internally consistent:

* balance_status: EXPIRED when the account is EXPIRED; else FULLY_USED at 0, AVAILABLE when nothing of the
  approval is used, PARTIALLY_USED in between; null when there is no approval or no balance (INACTIVE).
* increase_eligible: ACTIVE, made at least one purchase, and the patient's dice allow it.
* extension_eligible: ACTIVE approval expiring within 30 days, or EXPIRED (re-activation), dice allowing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sandbox.cherry.formats import epoch, money, money_or_none, stamp
from sandbox.cherry.models import PatientVersion

ACCOUNT_STATUSES = ("ACTIVE", "INACTIVE", "EXPIRED", "DECLINED", "PENDING_REVIEW")
BALANCE_STATUSES = ("AVAILABLE", "PARTIALLY_USED", "FULLY_USED", "EXPIRED")
PAYMENT_STATUSES = ("COMPLETED", "REFUNDED", "PARTIALLY_REFUNDED", "CANCELLED")
EVENT_FOR_STATUS = {
    "COMPLETED": "payment.completed",
    "REFUNDED": "payment.refunded",
    "PARTIALLY_REFUNDED": "payment.refunded",
    "CANCELLED": "payment.cancelled",
}
DAY = 86_400
EXTENSION_WINDOW = 30 * DAY


def balance_status(status: str, approval: str | None, balance: str | None) -> str | None:
    if status == "EXPIRED":
        return "EXPIRED"
    approved, left = money_or_none(approval), money_or_none(balance)
    if approved is None or left is None:
        return None
    if left <= 0:
        return "FULLY_USED"
    return "AVAILABLE" if left >= approved else "PARTIALLY_USED"


@dataclass(slots=True)
class PatientLife:
    """A patient's current version and the hidden state its transitions need."""

    version: PatientVersion
    validity_seconds: int
    increase_dice: float
    extension_dice: float
    period: int = 0
    purchases: int = 0
    expires: int | None = None  # approval_expires_at as epoch seconds (parsing it each time is slow)

    # -- reading -----------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.version.id

    @property
    def status(self) -> str:
        return self.version.account_status

    @property
    def balance(self) -> Decimal | None:
        return money_or_none(self.version.balance_available)

    @property
    def approval(self) -> Decimal | None:
        return money_or_none(self.version.approval_amount)

    # -- writing -----------------------------------------------------------------------------------
    def _settle(self, t: int, **changes) -> PatientVersion:
        old = self.version

        def value(name: str):
            return changes[name] if name in changes else getattr(old, name)

        status = value("account_status")
        exp = self.expires
        extension = (
            status == "ACTIVE" and exp is not None and exp - t <= EXTENSION_WINDOW and self.extension_dice < 0.5
        ) or (status == "EXPIRED" and self.extension_dice < 0.4)
        self.version = old.evolve(
            updated_at=stamp(t),
            balance_status=balance_status(status, value("approval_amount"), value("balance_available")),
            increase_eligible=status == "ACTIVE" and self.purchases > 0 and self.increase_dice < 0.35,
            extension_eligible=extension,
            **changes,
        )
        return self.version

    def approve(self, t: int, amount: Decimal, completed_at: int) -> PatientVersion:
        """A (re-)approval: a fresh approval period with the whole amount available."""
        self.period += 1
        self.expires = t + self.validity_seconds
        return self._settle(
            t,
            account_status="ACTIVE",
            approval_amount=money(amount),
            balance_available=money(amount),
            application_completed_at=stamp(completed_at),
            approval_expires_at=stamp(t + self.validity_seconds),
        )

    def decline(self, t: int, completed_at: int) -> PatientVersion:
        self.expires = None
        return self._settle(
            t,
            account_status="DECLINED",
            approval_amount=None,
            balance_available=None,
            application_completed_at=stamp(completed_at),
            approval_expires_at=None,
        )

    def spend(self, t: int, amount: Decimal) -> PatientVersion:
        self.purchases += 1
        left = max(Decimal(0), (self.balance or Decimal(0)) - amount)
        return self._settle(t, balance_available=money(left))

    def restore(self, t: int, amount: Decimal, period: int) -> PatientVersion | None:
        """Give back a refunded/cancelled amount, if it was drawn on the current approval."""
        if period != self.period or self.balance is None or self.approval is None:
            return None
        left = min(self.approval, self.balance + amount)
        return self._settle(t, balance_available=money(left))

    def expire(self, t: int) -> PatientVersion:
        return self._settle(t, account_status="EXPIRED")

    def deactivate(self, t: int) -> PatientVersion:
        return self._settle(t, account_status="INACTIVE", balance_available=None)

    def increase(self, t: int, extra: Decimal, cap: Decimal) -> PatientVersion:
        """An approved limit increase: both the limit and the balance grow."""
        approval = self.approval or Decimal(0)
        extra = min(extra, cap - approval)
        self.increase_dice = 1.0  # one increase per approval is plenty
        return self._settle(
            t,
            approval_amount=money(approval + extra),
            balance_available=money((self.balance or Decimal(0)) + extra),
        )

    def extend(self, t: int) -> PatientVersion:
        """The approval's expiry pushed out by one validity period (also re-activates an EXPIRED one)."""
        self.expires = max(t, self.expires or t) + self.validity_seconds
        self.extension_dice = 1.0
        return self._settle(t, account_status="ACTIVE", approval_expires_at=stamp(self.expires))

    def touch(self, t: int, **changes) -> PatientVersion:
        """Any other change (contact details, location, flags)."""
        return self._settle(t, **changes)

    def touch_at(self, when: str, **changes) -> PatientVersion:
        """`touch` at a canonical timestamp."""
        return self._settle(epoch(when), **changes)
