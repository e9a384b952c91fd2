"""The product's failures: one base class, a reason code, and what a practice's task does about it.

Every error the package raises on purpose is a `CherrySyncError`. It carries a `ReasonCode` (what the run ledger,
rejections and the DAGs' "If it fails" tables name) and a `Disposition`, which the base operator
(`operators.practice.PracticeOperator`) maps onto Airflow in one place:

- `RETRY`: may pass on its own (an API that did not answer after the hook's own retries): the task fails and
  Airflow's retries take over;
- `FAIL`: a person must act (credentials, configuration): the task fails at once, no retries;
- `DEFER`: come back on a later run (the CRM location's daily budget): the task is skipped, ledger "deferred";
- `SKIP`: nothing to do for this practice (disabled, no recipients): the task is skipped, ledger "skipped".

`describe()` is one sentence a person reads (the failed task's error, the failure email, the ledger's reason code
beside it). Messages name practices, connections, fields and time zones: never patient data.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from cherry_sync.reasons import ReasonCode


class Disposition(StrEnum):
    """What a practice's task does when the error reaches it (see the module docstring)."""

    RETRY = "retry"
    FAIL = "fail"
    DEFER = "defer"
    SKIP = "skip"


class CherrySyncError(Exception):
    """Base of every error the package raises on purpose: a reason code, a disposition and a sentence.

    Subclasses set `reason_code` (a class attribute, or per instance when one class covers several codes) and
    `disposition` (default: retry), and `advice` when the task's message should say what to do next.
    """

    reason_code: ReasonCode
    disposition: ClassVar[Disposition] = Disposition.RETRY
    advice: ClassVar[str] = ""  # what a person does next, appended to the task's failure message

    def describe(self) -> str:
        """One plain sentence for a person: what went wrong (no patient data)."""
        return str(self)

    def ledger_details(self) -> dict[str, Any]:
        """What the run ledger keeps about this failure: the reason code (subclasses add opaque context)."""
        return {"reason": self.reason_code.value}


class PracticeFailed(CherrySyncError):
    """What a practice's task raises to Airflow for a failure its retries may cure (`Disposition.RETRY`).

    It carries the cause's reason code and sentence and nothing else: the cause itself is not chained, because a
    library's own message can hold request URLs with query values.
    """

    def __init__(self, message: str, reason_code: ReasonCode) -> None:
        self.reason_code = reason_code
        super().__init__(message)

    def __reduce__(self) -> tuple[type[PracticeFailed], tuple[object, ...]]:
        return (type(self), (str(self), self.reason_code))
