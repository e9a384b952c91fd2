"""Typed API errors. Messages carry the operation, status and the API's (redacted) reason: never bodies."""

from __future__ import annotations

from typing import Any

from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.reasons import ReasonCode
from cherry_sync.safety import redact

SERVICE_NAMES = {"cherry": "the Cherry API", "crm": "the CRM (Aesthetix / HighLevel API)"}


class ApiError(CherrySyncError):
    """Base of every error a hook raises. `reason_code` is stable and short, for ledgers and rejections.

    The hook that raised it fills in `service` ("cherry" / "crm"), `conn_id` and `attempts`, so `describe()` can
    say in plain words which API of which connection failed and how (no values from requests or responses).
    `retryable` is for the hook (another attempt of the same call); `disposition` for the practice's task.
    """

    reason_code = ReasonCode.API_ERROR
    retryable = False

    def __init__(self, operation: str, message: str = "", status: int | None = None, api_code: str | None = None):
        self.operation = operation
        self.status = status
        self.api_code = api_code
        self.api_message = redact(message)[:300]
        self.service: str | None = None
        self.conn_id: str | None = None
        self.attempts: int | None = None
        detail = f" ({self.api_code})" if self.api_code else ""
        status_txt = f"HTTP {status} " if status is not None else ""
        super().__init__(f"{operation}: {status_txt}{self.reason_code}{detail}: {self.api_message}".rstrip(": "))

    def describe(self) -> str:
        return describe(self)

    def ledger_details(self) -> dict[str, Any]:
        """The reason code, the operation, which API and connection (and the HTTP status): no values."""
        details = {
            **super().ledger_details(),
            "operation": self.operation,
            "service": self.service,
            "conn_id": self.conn_id,
        }
        if self.status is not None:
            details["status"] = self.status
        return details


class AuthError(ApiError):
    """401: the key or token is wrong or revoked."""

    reason_code = ReasonCode.AUTH_FAILED
    disposition = Disposition.FAIL
    advice = "Not retried: fix the connection, then re-run."


class ForbiddenError(ApiError):
    """403: authenticated but not allowed (wrong location, key not activated)."""

    reason_code = ReasonCode.FORBIDDEN
    disposition = Disposition.FAIL
    advice = "Not retried: fix the connection, then re-run."


class KeyNotActivatedError(ForbiddenError):
    """403 from Cherry: the practice generated the key but has not activated it yet."""

    reason_code = ReasonCode.KEY_NOT_ACTIVATED


class NotFoundError(ApiError):
    """404."""

    reason_code = ReasonCode.NOT_FOUND


class ValidationError(ApiError):
    """400 / 422: the API refused the request; `api_message` says why (redacted)."""

    reason_code = ReasonCode.VALIDATION_FAILED


class RateLimitedError(ApiError):
    """429 for the burst window. Retried after `retry_after` seconds."""

    reason_code = ReasonCode.RATE_LIMITED
    retryable = True

    def __init__(self, operation: str, message: str = "", status: int | None = 429, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(operation, message, status)


class DailyBudgetExhaustedError(ApiError):
    """The location's daily request budget is spent: defer the practice, do not retry in a loop."""

    reason_code = ReasonCode.DAILY_BUDGET_EXHAUSTED
    disposition = Disposition.DEFER


class CancelledError(ApiError):
    """The task is ending (a timeout, a failure of the batch's other writes): no new attempt is sent."""

    reason_code = ReasonCode.CANCELLED


class ServerError(ApiError):
    """5xx."""

    reason_code = ReasonCode.SERVER_ERROR
    retryable = True


class ApiTimeoutError(ApiError):
    """No answer within the read timeout."""

    reason_code = ReasonCode.TIMEOUT
    retryable = True


class ApiUnavailableError(ApiError):
    """Could not connect at all (refused, DNS, reset)."""

    reason_code = ReasonCode.UNAVAILABLE
    retryable = True


class AmbiguousWriteError(ApiError):
    """A write may or may not have been applied and there is no way to check: not repeated automatically."""

    reason_code = ReasonCode.AMBIGUOUS_WRITE


class MalformedResponseError(ApiError):
    """The API answered 2xx with a body that does not follow the contract."""

    reason_code = ReasonCode.MALFORMED_RESPONSE


def describe(exc: ApiError) -> str:
    """One plain sentence for a person: which API (and connection) failed, and why; the operation in brackets."""
    service = SERVICE_NAMES.get(exc.service or "", "the API")
    conn = f" of Airflow connection '{exc.conn_id}'" if exc.conn_id else ""
    said = f": {exc.api_message}" if exc.api_message else ""
    status = f"HTTP {exc.status}" if exc.status is not None else ""
    tries = f" after {exc.attempts} attempts" if exc.attempts and exc.attempts > 1 else ""
    if isinstance(exc, KeyNotActivatedError):
        text = f"the Cherry API key{conn} is not activated yet (the practice activates it in the Cherry portal)"
    elif isinstance(exc, AuthError):
        what = "API key" if exc.service == "cherry" else "token" if exc.service == "crm" else "credentials"
        text = f"{service} rejected the {what}{conn} as invalid ({status}{said})"
    elif isinstance(exc, ForbiddenError):
        text = f"{service} denied access with the credentials{conn} ({status}{said})"
    elif isinstance(exc, DailyBudgetExhaustedError):
        # The budget is HighLevel's, per location: the task's "deferred: ..." line starts with these words.
        owner = "the CRM location" if exc.service == "crm" else service
        text = f"{owner}'s daily request budget is used up" + (
            f" (Airflow connection '{exc.conn_id}')" if exc.conn_id else ""
        )
    elif isinstance(exc, ApiUnavailableError):
        text = f"{service} could not be reached{tries} ({exc.api_message or 'connection failed'}); check the host{conn}"
    elif isinstance(exc, ApiTimeoutError):
        text = f"{service} did not answer in time{tries}"
    elif isinstance(exc, ServerError):
        text = f"{service} kept failing with server errors{tries} ({status}{said})"
    elif isinstance(exc, RateLimitedError):
        text = f"{service} kept refusing requests as rate-limited{tries}"
    elif isinstance(exc, MalformedResponseError):
        text = f"{service} answered outside its contract ({exc.api_message})"
    else:
        text = f"{service} failed ({exc.reason_code}{', ' + status if status else ''}{said})"
    return f"{text} [{exc.operation}]"
