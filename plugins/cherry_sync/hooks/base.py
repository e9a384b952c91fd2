"""`ApiHook`: what both API hooks share, built on the HTTP provider's `HttpHook` (requests).

Differences from the provider's behaviour, on purpose:
- every request has a connect and a read timeout;
- failures become typed exceptions (`hooks.errors`), and nothing logs a request or response body;
- 429 / 5xx / timeouts are retried with exponential backoff and jitter, honouring `Retry-After`;
- a write that may have been applied (timeout or 5xx after sending) is reconciled before it is
  repeated, or not repeated at all when it is not idempotent and cannot be checked;
- a `Pacer` slot is taken before every attempt, so concurrent workers stay under the burst limit;
- connection extras configure the hook; they are never turned into request headers.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook

from cherry_sync.hooks import errors
from cherry_sync.hooks.pacing import Pacer, PaceSettings, default_pacer

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _NoQueryValues(logging.Filter):
    """Cuts query strings out of urllib3's DEBUG request lines: lookups carry emails and phones there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "?" in a for a in record.args):
            record.args = tuple(
                a.split("?", 1)[0] + "?[query redacted]" if isinstance(a, str) and "?" in a else a for a in record.args
            )
        return True


def _install_log_filters() -> None:
    for name in ("urllib3.connectionpool",):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoQueryValues) for f in logger.filters):
            logger.addFilter(_NoQueryValues())


_install_log_filters()


@dataclass(frozen=True)
class RetrySettings:
    """How hard to try. Overridable per connection through extras of the same names."""

    max_attempts: int = 8
    max_elapsed_seconds: float = 300.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0


@dataclass
class Page:
    """One page of a paginated list: the items and the cursor that resumes after them."""

    items: list[dict]
    next_cursor: str | None
    has_more: bool


class ApiHook(HttpHook):
    """Shared machinery for `CherryHook` and `AesthetixCrmHook`. Subclasses set the class attributes."""

    service = "api"
    version_header: str | None = None
    default_pace = PaceSettings()

    def __init__(
        self,
        conn_id: str,
        *,
        pacer: Pacer | None = None,
        connection: Any | None = None,
        retry: RetrySettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(method="GET", http_conn_id=conn_id)
        self._connection_override = connection
        self.pacer = pacer or default_pacer()
        self._retry_override = retry
        self._sleep = sleep
        self.calls: Counter[str] = Counter()  # attempts per operation, retries included
        self.daily_remaining: int | None = None
        self._session: requests.Session | None = None

    # -- configuration -------------------------------------------------------------------------

    @cached_property
    def connection(self):
        conn = self._connection_override or self.get_connection(self.http_conn_id)
        if conn.password:
            _mask(conn.password)
        return conn

    @cached_property
    def extra(self) -> dict:
        return dict(self.connection.extra_dejson or {})

    @cached_property
    def retry_settings(self) -> RetrySettings:
        base = self._retry_override or RetrySettings()
        overrides = {
            k: type(getattr(base, k))(self.extra[k]) for k in RetrySettings.__dataclass_fields__ if k in self.extra
        }
        return RetrySettings(**{**base.__dict__, **overrides})

    @cached_property
    def pace_settings(self) -> PaceSettings:
        d = self.default_pace
        return PaceSettings(
            max_requests=int(self.extra.get("burst_limit", d.max_requests)),
            window_seconds=float(self.extra.get("burst_window_seconds", d.window_seconds)),
            max_wait_seconds=float(self.extra.get("pace_max_wait_seconds", d.max_wait_seconds)),
        )

    @property
    def pace_key(self) -> str:
        """What the service rate-limits on. Default: a fingerprint of the credential."""
        secret = self.connection.password or self.http_conn_id
        return f"{self.service}-{hashlib.sha256(secret.encode()).hexdigest()[:16]}"

    def get_conn(self, headers: dict | None = None, extra_options: dict | None = None) -> requests.Session:
        """A session with base URL, auth and version headers; extras are *not* copied into headers."""
        if self._session is None:
            self._set_base_url(self.connection)
            session = requests.Session()
            session.headers.update({"Accept": "application/json", "User-Agent": "cherry-sync/0.1"})
            if self.connection.password:
                session.headers["Authorization"] = f"Bearer {self.connection.password}"
            if self.version_header:
                session.headers["Version"] = self.version_header
            session.trust_env = bool(self.extra.get("trust_env", False))
            if self.keep_alive_adapter is not None:
                session.mount("http://", self.keep_alive_adapter)
                session.mount("https://", self.keep_alive_adapter)
            self._session = session
        if headers:
            self._session.headers.update(headers)
        return self._session

    def check_response(self, response: requests.Response) -> None:
        """Raise the typed error for a non-2xx response, without logging its body."""
        if response.status_code < 400:
            return
        raise self._error_for(response, f"{response.request.method} {self._template_of(response)}")

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.ping()
        except errors.ApiError as exc:
            return False, str(exc)
        return True, "Connection successfully tested"

    def ping(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- requests ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        op: str | None = None,
        params: dict | None = None,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        headers: dict | None = None,
        idempotent: bool | None = None,
        reconcile: Callable[[], Any | None] | None = None,
        stream: bool = False,
    ) -> Any:
        """Send one logical request with pacing and retries; return the decoded JSON body.

        `op` names the operation for counters and messages ("POST /contacts/upsert"); never put ids or
        query values in it. For writes, `reconcile()` is called before a repeat when the previous attempt
        may have been applied; it returns the equivalent result (the write landed) or None (safe to repeat).
        With `stream=True` the raw `requests.Response` is returned (the caller closes it).
        """
        method = method.upper()
        op = op or f"{method} {path}"
        is_write = method in WRITE_METHODS
        if idempotent is None:
            idempotent = not is_write or method in ("PUT", "DELETE")
        rs = self.retry_settings
        session = self.get_conn()
        url = self.url_from_endpoint(path)
        ambiguous = False

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(rs.max_attempts) | tenacity.stop_after_delay(rs.max_elapsed_seconds),
            wait=self._wait,
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, errors.ApiError) and e.retryable),
            before_sleep=self._log_retry(op),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    # Once an attempt may have been applied, every later attempt looks first: the lost write can
                    # land after an earlier look found nothing (e.g. while a 429 on the repeat is waited out).
                    if ambiguous and reconcile is not None:
                        found = reconcile()
                        if found is not None:
                            self.log.info("%s: earlier attempt had been applied; not repeated", op)
                            return found
                    self._check_daily_budget(op)
                    self.pacer.acquire(self.pace_key, self.pace_settings)
                    self.calls[op] += 1
                    response, failure, maybe_sent = self._send(
                        session,
                        method,
                        url,
                        op,
                        rs,
                        stream,
                        params=params,
                        json=json,
                        data=data,
                        files=files,
                        headers=headers,
                    )
                    if failure is not None:
                        # Raised here, outside the `except` that caught the requests exception: that exception (its
                        # URL carries query values such as an email) must not ride along as `__context__`.
                        ambiguous = ambiguous or (is_write and maybe_sent)
                        self._guard_ambiguous(op, ambiguous, idempotent, reconcile)
                        raise failure
                    self._note_budget(response)
                    if response.status_code >= 400:
                        error = self._error_for(response, op)
                        response.close()
                        if isinstance(error, errors.ServerError):
                            ambiguous = ambiguous or is_write
                            self._guard_ambiguous(op, ambiguous, idempotent, reconcile)
                        raise error
                    if stream:
                        return response
                    return self._decode(response, op)
        except errors.ApiError as exc:
            # Who failed, for a message in plain words (`errors.describe`); known here, not where it was raised.
            exc.service = exc.service or self.service
            exc.conn_id = exc.conn_id or self.http_conn_id
            exc.attempts = exc.attempts or retrying.statistics.get("attempt_number")
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self,
        session: requests.Session,
        method: str,
        url: str,
        op: str,
        rs: RetrySettings,
        stream: bool,
        **kwargs: Any,
    ) -> tuple[requests.Response | None, errors.ApiError | None, bool]:
        """One attempt: (response, None, True), or (None, typed error, whether the request may have been
        received) when no HTTP answer came back."""
        try:
            response = session.request(
                method,
                url,
                timeout=(rs.connect_timeout, rs.read_timeout),
                stream=stream,
                allow_redirects=False,
                **kwargs,
            )
        except requests.exceptions.ConnectTimeout:
            return None, errors.ApiUnavailableError(op, "connect timeout"), False
        except requests.exceptions.Timeout:
            return None, errors.ApiTimeoutError(op, "read timeout"), True
        except requests.exceptions.ConnectionError:
            # A dropped connection after sending a write is as ambiguous as a timeout.
            return None, errors.ApiUnavailableError(op, "connection failed"), True
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            return None, errors.ApiUnavailableError(op, "response cut off"), True
        except requests.exceptions.RequestException as exc:  # bad URL, too many redirects...: not transient
            return None, errors.ApiError(op, f"request failed ({type(exc).__name__})"), False
        return response, None, True

    def iter_pages(
        self, path: str, *, op: str, params: dict | None = None, cursor: str | None = None
    ) -> Iterator[Page]:
        """Follow a cursor-paginated list to its end (`{data, next_cursor, has_more}`)."""
        params = dict(params or {})
        while True:
            if cursor:
                params["cursor"] = cursor
            body = self.request("GET", path, op=op, params=params)
            page = self._page_from(body, op)
            yield page
            if not page.has_more or not page.next_cursor:
                return
            cursor = page.next_cursor

    @staticmethod
    def _page_from(body: Any, op: str) -> Page:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise errors.MalformedResponseError(op, "list response without a data array")
        return Page(items=body["data"], next_cursor=body.get("next_cursor"), has_more=bool(body.get("has_more")))

    # -- internals -----------------------------------------------------------------------------

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())

    def _guard_ambiguous(self, op: str, ambiguous: bool, idempotent: bool, reconcile) -> None:
        """A write whose outcome is unknown is repeated only when idempotent or checkable first."""
        if ambiguous and not idempotent and reconcile is None:
            raise errors.AmbiguousWriteError(op, "outcome unknown and the write cannot be checked; not repeated")

    def _check_daily_budget(self, op: str) -> None:
        reserve = int(self.extra.get("daily_reserve", 0))
        if self.daily_remaining is not None and self.daily_remaining <= reserve:
            raise errors.DailyBudgetExhaustedError(op, "daily request budget used up; deferring")

    def _note_budget(self, response: requests.Response) -> None:
        remaining = response.headers.get("X-RateLimit-Daily-Remaining")
        if remaining is not None and remaining.lstrip("-").isdigit():
            self.daily_remaining = int(remaining)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        rs = self.retry_settings
        backoff = min(rs.backoff_max, rs.backoff_initial * 2 ** (state.attempt_number - 1))
        backoff = backoff / 2 + random.uniform(0, backoff / 2)  # noqa: S311 - jitter, not crypto
        if isinstance(exc, errors.RateLimitedError) and exc.retry_after is not None:
            # Honoured, but never past the whole call's time budget (a daily-limit Retry-After can be hours).
            return min(exc.retry_after, rs.max_elapsed_seconds) + random.uniform(0, 0.25)  # noqa: S311
        return backoff

    def _log_retry(self, op: str):
        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            reason = getattr(exc, "reason_code", type(exc).__name__)
            wait = state.next_action.sleep if state.next_action else 0
            self.log.warning("%s: attempt %d failed (%s); retrying in %.2fs", op, state.attempt_number, reason, wait)

        return before_sleep

    def _decode(self, response: requests.Response, op: str) -> Any:
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            pass
        # Raised outside the `except`: the JSONDecodeError keeps the whole body (`.doc`), patient data included.
        raise errors.MalformedResponseError(op, "response body is not JSON", response.status_code)

    def _error_details(self, response: requests.Response) -> tuple[str | None, str]:
        """(api error code, message) from the service's error body. Subclasses know the shape."""
        return None, response.reason or ""

    def _error_for(self, response: requests.Response, op: str) -> errors.ApiError:
        status = response.status_code
        code, message = self._error_details(response)
        if status == 401:
            return errors.AuthError(op, message, status, code)
        if status == 403:
            return self._forbidden(op, message, code)
        if status == 404:
            return errors.NotFoundError(op, message, status, code)
        if status == 429:
            if self.daily_remaining is not None and self.daily_remaining <= 0:
                return errors.DailyBudgetExhaustedError(op, message, status, code)
            return errors.RateLimitedError(op, message, status, _retry_after(response))
        if status >= 500:
            return errors.ServerError(op, message, status, code)
        if status in (400, 409, 413, 415, 422):
            return errors.ValidationError(op, message, status, code)
        return errors.ApiError(op, message, status, code)

    def _forbidden(self, op: str, message: str, code: str | None) -> errors.ApiError:
        return errors.ForbiddenError(op, message, 403, code)

    @staticmethod
    def _template_of(response: requests.Response) -> str:
        return requests.utils.urlparse(response.url).path


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _mask(secret: str) -> None:
    """Register a credential with Airflow's log masker (no-op outside Airflow's logging)."""
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)
    except Exception:  # noqa: BLE001, S110 - masking is best effort outside a task
        pass
