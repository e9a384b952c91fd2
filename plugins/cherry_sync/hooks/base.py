"""`ApiHook`: what both API hooks share. An Airflow hook (`BaseHook`) with its own `requests` client.

Why not the HTTP provider's `HttpHook`: its public `run` / `run_and_check` send a request with no pacing, no timeout
and no typed errors, its `check_response` logs whole response bodies, and every connection extra that is not a
request option becomes a request header. Here every request goes through `request()` (and lists through
`paginate()`), so none skips what follows:
- every request has a connect and a read timeout;
- failures become typed exceptions (`hooks.errors`), and nothing logs a request or response body;
- 429 / 5xx / timeouts are retried with exponential backoff and jitter, honouring `Retry-After` (seconds or an
  HTTP date);
- a write that may have been applied (timeout or 5xx after sending) is reconciled before it is
  repeated, or not repeated at all when it is not idempotent and cannot be checked;
- a `Pacer` slot is taken before every attempt, so concurrent workers stay under the burst limit, and the
  service's own count (`X-RateLimit-Remaining` per `X-RateLimit-Interval-Milliseconds`) is honoured on top;
- one hook may be used from several threads at once (a `WriteWindow` keeps several requests in flight):
  each thread gets its own `requests.Session`, built the same way (auth, TLS and proxy settings, TCP keep-alive),
  and the counters are locked;
- connection extras configure the hook (`Transport`, `RetrySettings`, pacing); they never become request headers.

The connection: host = the API's base URL (a host without a scheme gets https; the port field is added when the
host has no port of its own), password = the API key or token, unless the hook is given `credentials` (an object
with `bearer()` and `rejected(token)`, e.g. a CRM location's OAuth tokens): then the bearer token is asked for on
every attempt, and a 401 is retried once with the fresh token `rejected()` hands back.
TLS and proxy extras, as the HTTP provider names them: `verify` (false, or a CA bundle path), `cert` (a client
certificate file, or [certificate, key]), `proxies` (`{"https": "http://proxy:3128"}`), `trust_env` (also read the
environment's proxy and CA variables; default false).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import tenacity
from airflow.sdk import BaseHook
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

from cherry_sync.hooks import errors
from cherry_sync.hooks.pacing import Pacer, PaceSettings, PacingTimeoutError, default_pacer
from cherry_sync.hooks.paging import Page, Paging

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


# `test_connection`'s one cheap call: a person is waiting on the other side of the form's Test button.
PROBE_RETRY = RetrySettings(
    max_attempts=2, max_elapsed_seconds=15.0, backoff_initial=0.5, backoff_max=2.0, read_timeout=10.0
)
PROBE_OK = "Connection successfully tested"

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class Transport:
    """TLS and proxy settings every session of the hook gets (connection extras `verify`, `cert`, `proxies`,
    `trust_env`, read as the HTTP provider reads them)."""

    verify: bool | str = True
    cert: str | tuple[str, str] | None = None
    proxies: dict[str, str] | None = None
    trust_env: bool = False

    @classmethod
    def from_extra(cls, extra: dict, conn_id: str) -> Transport:
        def refuse(name: str, what: str) -> errors.ValidationError:
            # Never the value: a proxy URL can carry a password.
            return errors.ValidationError("connection", f"connection {conn_id}: extra '{name}' must be {what}")

        verify: bool | str = True
        if "verify" in extra:
            verify = _flag(extra["verify"])
            if verify is None:
                raise refuse("verify", "true, false or a CA bundle path")
        cert = extra.get("cert")
        if isinstance(cert, list | tuple) and len(cert) == 2 and all(isinstance(c, str) for c in cert):
            cert = (cert[0], cert[1])
        elif cert is not None and not isinstance(cert, str):
            raise refuse("cert", "a certificate file path or [certificate, key] paths")
        proxies = extra.get("proxies", extra.get("proxy"))
        if proxies is not None and not (
            isinstance(proxies, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in proxies.items())
        ):
            raise refuse("proxies", 'an object of scheme -> proxy URL, e.g. {"https": "http://proxy:3128"}')
        trust_env = _flag(extra.get("trust_env", False))
        if not isinstance(trust_env, bool):
            raise refuse("trust_env", "true or false")
        return cls(verify=verify, cert=cert, proxies=dict(proxies) if proxies else None, trust_env=trust_env)

    def apply(self, session: requests.Session) -> None:
        session.verify = self.verify
        session.cert = self.cert
        session.proxies = dict(self.proxies or {})
        session.trust_env = self.trust_env


class Credentials(Protocol):
    """Where a hook's bearer token comes from, per attempt."""

    def bearer(self) -> str | None:
        """The token to send now (None: no Authorization header)."""
        ...

    def rejected(self, token: str) -> str | None:
        """The API answered 401 for `token`: a fresh token to retry once with, or None (the 401 stands)."""
        ...


class ConnectionCredentials:
    """The default: the connection's password (an API key or Private Integration Token), never renewed."""

    def __init__(self, hook: ApiHook) -> None:
        self._hook = hook

    def bearer(self) -> str | None:
        return self._hook.connection.password or None

    def rejected(self, token: str) -> str | None:
        return None


def _flag(value: Any) -> bool | str | None:
    """A boolean extra as JSON or the connection form gives it (true, "false", "1"...); any other text as is (a
    path), and None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        return text or None
    return None


class ApiHook(BaseHook):
    """Shared machinery for `CherryHook` and `AesthetixCrmHook`. Subclasses set the class attributes.

    Public surface: `request` (one call), `paginate` (a paged list), `test_connection`, `get_conn` (this thread's
    session, for inspection: send through `request`), the counters (`calls`, `thread_calls`, `api_calls`), and
    `cancel`. The connection form (Airflow UI) is `get_ui_field_behaviour` and `conn_fields`, both declared in
    `cherry_sync.provider`, which hands them to Airflow.
    """

    service = "api"
    conn_name_attr = "conn_id"
    version_header: str | None = None
    default_pace = PaceSettings()
    # Extra fields of the Airflow connection form: name -> label, description and JSON schema (Airflow's
    # `conn-fields`, declared in `cherry_sync.provider`). Stored as top-level keys of the connection's extra.
    conn_fields: dict[str, dict] = {}

    def __init__(
        self,
        conn_id: str,
        *,
        pacer: Pacer | None = None,
        connection: Any | None = None,
        retry: RetrySettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
        credentials: Credentials | None = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self._connection_override = connection
        self.credentials: Credentials = credentials or ConnectionCredentials(self)
        self.pacer = pacer or default_pacer()
        self._retry_override = retry
        self._sleep = sleep
        self.calls: Counter[str] = Counter()  # attempts per operation, retries included
        self.daily_remaining: int | None = None
        # One session per thread: `requests.Session` is not documented as thread-safe, and a window of writes
        # in flight sends from several threads.
        self._local = threading.local()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._latency: float | None = None  # moving average of answered requests' round trip, seconds
        self._server_window: tuple[int, float, int, float] | None = None  # remaining, interval s, max, noted at
        self._cancelled = threading.Event()

    # -- the connection form (Airflow UI) --------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Which standard fields the connection form hides, relabels and pre-fills (Airflow's field behaviour)."""
        return {"hidden_fields": [], "relabeling": {}, "placeholders": {}}

    # -- configuration -------------------------------------------------------------------------

    @cached_property
    def connection(self):
        conn = self._connection_override or self.get_connection(self.conn_id)
        if conn.password:
            _mask(conn.password)
        return conn

    @cached_property
    def extra(self) -> dict:
        """The connection's extras; a field the connection form left empty counts as not set."""
        return {k: v for k, v in (self.connection.extra_dejson or {}).items() if v is not None and v != ""}

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

    @cached_property
    def transport(self) -> Transport:
        transport = Transport.from_extra(self.extra, self.conn_id)
        for url in (transport.proxies or {}).values():
            password = urlsplit(url).password if "@" in url else None
            if password:
                _mask(password)  # a proxy's credentials are as secret as the API key
        return transport

    @cached_property
    def base_url(self) -> str:
        """The API's base URL: the connection's host (https when it names no scheme), with the connection's port
        when the host has none (`https://services.leadconnectorhq.com` + 443; a host with its own port as is)."""
        conn = self.connection
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            raise errors.ValidationError("connection", f"connection {self.conn_id} has no host (the API base URL)")
        url = host if "://" in host else f"{conn.schema or 'https'}://{host}"
        try:
            own_port = urlsplit(url).port
        except ValueError:
            raise errors.ValidationError("connection", f"connection {self.conn_id}: the host is not a URL") from None
        if conn.port and own_port not in (None, conn.port):
            raise errors.ValidationError("connection", f"connection {self.conn_id}: host and port name different ports")
        if conn.port and own_port is None:
            scheme, rest = url.split("://", 1)
            authority, _, path = rest.partition("/")
            url = f"{scheme}://{authority}:{conn.port}" + (f"/{path}" if path else "")
        return url

    @property
    def pace_key(self) -> str:
        """What the service rate-limits on. Default: a fingerprint of the credential."""
        secret = self.connection.password or self.conn_id
        return f"{self.service}-{hashlib.sha256(secret.encode()).hexdigest()[:16]}"

    def get_conn(self) -> requests.Session:
        """This thread's session: version header, TLS and proxy settings, TCP keep-alive (the Authorization
        header is added per attempt by `request`).

        Extras are *not* copied into headers. Send through `request()`: the session alone neither paces nor
        retries.
        """
        session = getattr(self._local, "session", None)
        if session is None:
            transport = self.transport  # a bad extra fails before anything is built
            session = requests.Session()
            session.headers.update({"Accept": "application/json", "User-Agent": "cherry-sync/0.1"})
            # No Authorization here: `request` sets it per attempt from `credentials` (a token may be renewed).
            if self.version_header:
                session.headers["Version"] = self.version_header
            transport.apply(session)
            # As the HTTP provider does: idle connections are kept alive through NATs and load balancers.
            adapter = TCPKeepAliveAdapter(idle=120, count=20, interval=30)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    def thread_calls(self, op: str) -> int:
        """Attempts of `op` sent from the calling thread, retries included: what one job of a `WriteWindow` sent,
        where `calls` (shared by every thread) cannot tell."""
        return self._thread_calls()[op]

    def _thread_calls(self) -> Counter[str]:
        counter = getattr(self._local, "calls", None)
        if counter is None:
            counter = self._local.calls = Counter()
        return counter

    def cancel(self) -> None:
        """Send no new attempt from now on (requests already sent finish or time out): the task is ending."""
        self._cancelled.set()

    @property
    def observed_latency(self) -> float | None:
        """Moving average of the round trip of answered requests, in seconds (None before the first answer)."""
        return self._latency

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (`ping`), as the connection form's Test button runs it.

        The failure message says in plain words what is wrong (`errors.describe`): never the key or token.
        """
        try:
            self.ping()
        except errors.ApiError as exc:
            # The person at the form knows which connection this is; the id Airflow tests it under is a random one.
            exc.conn_id = None
            return False, errors.describe(exc)
        except PacingTimeoutError:
            return False, f"no request slot for {self.service} within the pacing wait; try again in a moment"
        return True, PROBE_OK

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
        retry: RetrySettings | None = None,
    ) -> Any:
        """Send one logical request with pacing and retries; return the decoded JSON body.

        `op` names the operation for counters and messages ("POST /contacts/upsert"); never put ids or
        query values in it. For writes, `reconcile()` is called before a repeat when the previous attempt
        may have been applied; it returns the equivalent result (the write landed) or None (safe to repeat).
        With `stream=True` the raw `requests.Response` is returned (the caller closes it). `retry` replaces the
        connection's retry settings for this call (`test_connection`'s quick probe).
        """
        method = method.upper()
        op = op or f"{method} {path}"
        is_write = method in WRITE_METHODS
        if idempotent is None:
            idempotent = not is_write or method in ("PUT", "DELETE")
        rs = retry or self.retry_settings
        session = self.get_conn()
        url = f"{self.base_url}/{path.lstrip('/')}"
        ambiguous = False
        renewed = False  # one retry with a fresh token per logical request, whatever the attempts

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
                    token = self.credentials.bearer()
                    while True:
                        response, failure, maybe_sent = self._attempt(
                            session, method, url, op, rs, stream, token, params, json, data, files, headers
                        )
                        if response is None or response.status_code != 401 or renewed or not token:
                            break
                        fresh = self.credentials.rejected(token)
                        if not fresh or fresh == token:
                            break
                        # The token was refused (expired early, revoked and re-issued): once more with the new one.
                        response.close()
                        renewed, token = True, fresh
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
                        if ambiguous and reconcile is not None and isinstance(error, errors.ValidationError):
                            # A repeat refused as a duplicate: the earlier attempt landed after the last look (the
                            # CRM kept working on it after the client gave up). The look now finds it.
                            found = reconcile()
                            if found is not None:
                                self.log.info("%s: earlier attempt had been applied (repeat refused); not repeated", op)
                                return found
                        raise error
                    if stream:
                        return response
                    return self._decode(response, op)
        except errors.ApiError as exc:
            # Who failed, for a message in plain words (`errors.describe`); known here, not where it was raised.
            exc.service = exc.service or self.service
            exc.conn_id = exc.conn_id or self.conn_id
            exc.attempts = exc.attempts or retrying.statistics.get("attempt_number")
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self,
        session: requests.Session,
        method: str,
        url: str,
        op: str,
        rs: RetrySettings,
        stream: bool,
        token: str | None,
        params: dict | None,
        json: Any,
        data: Any,
        files: Any,
        headers: dict | None,
    ) -> tuple[requests.Response | None, errors.ApiError | None, bool]:
        """One paced, counted send with `token` as the bearer (caller headers win: the OAuth client sets its own)."""
        if self._cancelled.is_set():
            raise errors.CancelledError(op, "the task is ending; no new attempt")
        self._check_daily_budget(op)
        self._wait_for_server_window()
        self.pacer.acquire(self.pace_key, self.pace_settings)
        with self._lock:
            self.calls[op] += 1
        self._thread_calls()[op] += 1
        sent_headers = dict(headers or {})
        if token and "Authorization" not in sent_headers:
            sent_headers["Authorization"] = f"Bearer {token}"
        return self._send(
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
            headers=sent_headers or None,
        )

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
        with self._lock:
            self._in_flight += 1
        started = time.monotonic()
        try:
            response = session.request(
                method,
                url,
                timeout=(rs.connect_timeout, rs.read_timeout),
                stream=stream,
                allow_redirects=False,
                **kwargs,
            )
            self._note_latency(time.monotonic() - started)
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
        finally:
            with self._lock:
                self._in_flight -= 1
        return response, None, True

    def paginate(
        self,
        method: str,
        path: str,
        paging: Paging,
        *,
        op: str,
        start: Any | None = None,
        idempotent: bool | None = None,
    ) -> Iterator[Page]:
        """Every page of a list from `start` (None: the first page) to its end, one `request()` per page; `paging`
        is the list's style (`hooks.paging`)."""
        token = start
        while True:
            body = self.request(method, path, op=op, idempotent=idempotent, **paging.request(token))
            page, token = paging.read(body, token, op)
            yield page
            if token is None:
                return

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
        burst = _header_int(response, "X-RateLimit-Remaining")
        interval_ms = _header_int(response, "X-RateLimit-Interval-Milliseconds")
        if burst is not None and interval_ms:
            limit = _header_int(response, "X-RateLimit-Max") or self.pace_settings.max_requests
            with self._lock:
                self._server_window = (burst, interval_ms / 1000.0, limit, time.monotonic())

    def _note_latency(self, seconds: float) -> None:
        with self._lock:
            self._latency = seconds if self._latency is None else 0.8 * self._latency + 0.2 * seconds

    def _wait_for_server_window(self) -> None:
        """Hold the next request while the service's own count says its window is spent.

        The pacer counts this deployment's requests; the service counts everyone's on the same key (another app
        on the same CRM location, say). When the last answer said no request is left in the window, the window
        is waited out (the service counts a sliding window, so only a whole interval after that answer is every
        request it counted surely gone) instead of collecting 429s. Our own pacer keeps us below the limit, so
        this only happens when someone else spends the location's budget.
        """
        with self._lock:
            window = self._server_window
        if window is None:
            return
        remaining, interval, _limit, noted_at = window
        if remaining > 0:
            return
        wait = interval - (time.monotonic() - noted_at)
        if wait > 0:
            self._sleep(wait)
        with self._lock:
            if self._server_window is window:  # nobody heard from the service meanwhile: the slot freed up
                self._server_window = None

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


def _header_int(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name)
    if value is None or not value.strip().lstrip("-").isdigit():
        return None
    return int(value)


def _retry_after(response: requests.Response) -> float | None:
    """`Retry-After` in seconds: delay-seconds, or an HTTP date (RFC 9110 10.2.3) counted from the response's
    `Date` (the server's clock; ours when it sent none). None when absent or unreadable."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = _http_date(value)
    if when is None:
        return None
    sent = _http_date(response.headers.get("Date") or "") or datetime.now(UTC)
    return max(0.0, (when - sent).total_seconds())


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # "-0000": UTC, says RFC 5322


def _mask(secret: str) -> None:
    """Register a credential with Airflow's log masker (no-op outside Airflow's logging)."""
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)
    except Exception:  # noqa: BLE001, S110 - masking is best effort outside a task
        pass
