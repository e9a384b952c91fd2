"""Typed API errors. Messages carry the operation, status and the API's (redacted) reason: never bodies."""

from __future__ import annotations

from cherry_sync.safety import redact


class ApiError(Exception):
    """Base of every error a hook raises. `reason_code` is stable and short, for ledgers and rejections."""

    reason_code = "api_error"
    retryable = False

    def __init__(self, operation: str, message: str = "", status: int | None = None, api_code: str | None = None):
        self.operation = operation
        self.status = status
        self.api_code = api_code
        self.api_message = redact(message)[:300]
        detail = f" ({self.api_code})" if self.api_code else ""
        status_txt = f"HTTP {status} " if status is not None else ""
        super().__init__(f"{operation}: {status_txt}{self.reason_code}{detail}: {self.api_message}".rstrip(": "))


class AuthError(ApiError):
    """401: the key or token is wrong or revoked."""

    reason_code = "auth_failed"


class ForbiddenError(ApiError):
    """403: authenticated but not allowed (wrong location, key not activated)."""

    reason_code = "forbidden"


class KeyNotActivatedError(ForbiddenError):
    """403 from Cherry: the practice generated the key but has not activated it yet."""

    reason_code = "key_not_activated"


class NotFoundError(ApiError):
    """404."""

    reason_code = "not_found"


class ValidationError(ApiError):
    """400 / 422: the API refused the request; `api_message` says why (redacted)."""

    reason_code = "validation_failed"


class RateLimitedError(ApiError):
    """429 for the burst window. Retried after `retry_after` seconds."""

    reason_code = "rate_limited"
    retryable = True

    def __init__(self, operation: str, message: str = "", status: int | None = 429, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(operation, message, status)


class DailyBudgetExhaustedError(ApiError):
    """The location's daily request budget is spent: defer the practice, do not retry in a loop."""

    reason_code = "daily_budget_exhausted"


class ServerError(ApiError):
    """5xx."""

    reason_code = "server_error"
    retryable = True


class ApiTimeoutError(ApiError):
    """No answer within the read timeout."""

    reason_code = "timeout"
    retryable = True


class ApiUnavailableError(ApiError):
    """Could not connect at all (refused, DNS, reset)."""

    reason_code = "unavailable"
    retryable = True


class AmbiguousWriteError(ApiError):
    """A write may or may not have been applied and there is no way to check: not repeated automatically."""

    reason_code = "ambiguous_write"


class MalformedResponseError(ApiError):
    """The API answered 2xx with a body that does not follow the contract."""

    reason_code = "malformed_response"
