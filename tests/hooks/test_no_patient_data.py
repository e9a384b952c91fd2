"""No patient data (emails, phones, dates) and no credential in what a failing hook raises or logs.

Every failure here carries patient data on the way in: an API that echoes the values it refused, a
connection error on a URL whose query string holds an email and a phone, a timeout on the duplicate
lookup, a 2xx body that is not JSON. The exception text, its chained causes and everything logged
(stdlib records and Airflow's structlog output on stdout/stderr) must be free of them.
"""

from __future__ import annotations

import logging
import traceback
from urllib.parse import quote, quote_plus

import pytest

from cherry_sync.hooks import errors
from cherry_sync.hooks.base import RetrySettings
from tests.hooks.conftest import FAST, cherry_hook, closed_port_url, crm_hook

EMAIL = "jane.pii-doe@example.com"
PHONE = "+15417543010"
DOB = "1985-03-14"
TWO_TRIES = RetrySettings(**{**FAST.__dict__, "max_attempts": 2})


def _forbidden(*secrets: str) -> list[str]:
    values = [EMAIL, PHONE, PHONE.lstrip("+"), DOB, *secrets]
    encoded = [form(v) for v in (EMAIL, PHONE) for form in (quote, quote_plus)]
    return [v for v in values + encoded if v]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        stack += [e.__cause__, e.__context__]
    return seen


def _exception_text(exc: BaseException) -> str:
    parts = ["".join(traceback.format_exception(exc))]
    for e in _chain(exc):
        parts += [str(e), repr(e), repr(e.args)]
        parts += [repr(v) for v in vars(e).values() if isinstance(v, str | bytes)]  # e.g. JSONDecodeError.doc
    return "\n".join(parts)


def assert_clean(exc: BaseException, logs: str, *secrets: str) -> None:
    assert isinstance(exc, errors.ApiError)
    assert exc.__cause__ is None and exc.__context__ is None, "a library exception (with URL/body) is chained"
    text = _exception_text(exc)
    for value in _forbidden(*secrets):
        assert value not in text, f"{value!r} in the exception"
        assert value not in logs, f"{value!r} in the logs"


@pytest.fixture
def logs(caplog, capfd):
    """Everything logged during the test, at DEBUG, from every logger, plus what went to stdout/stderr."""
    caplog.set_level(logging.DEBUG)

    def collect() -> str:
        out, err = capfd.readouterr()
        records = "\n".join(f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
        return "\n".join([records, out, err])

    return collect


def test_422_echoing_values(crm_sandbox, logs):
    hook = crm_hook(crm_sandbox)
    hook.create_custom_field(
        {
            "name": "Cherry Flags",
            "dataType": "MULTIPLE_OPTIONS",
            "model": "contact",
            "fieldKey": "contact.cherry_flags",
            "options": ["A", "B"],
        }
    )
    body = {
        "email": EMAIL,
        "phone": PHONE,
        "customFields": [{"key": "contact.cherry_flags", "field_value": [EMAIL, PHONE, DOB]}],
    }
    with pytest.raises(errors.ValidationError) as info:
        hook.upsert_contact(body)
    assert info.value.status == 422 and "not options" in info.value.api_message  # the reason survives
    assert_clean(info.value, logs(), crm_sandbox.location(0).token)


def test_connection_refused_on_the_duplicate_lookup(logs):
    token = "pit-11111111-2222-4333-8444-555555555555"
    hook = crm_hook(closed_port_url(), token=token, location_id="LOC123", retry=TWO_TRIES)
    with pytest.raises(errors.ApiUnavailableError) as info:
        hook.find_duplicate(email=EMAIL, phone=PHONE)
    assert_clean(info.value, logs(), token)


def test_successful_duplicate_lookup_logs_no_query_values(crm_sandbox, logs):
    """urllib3 logs each request line at DEBUG, query string included: the values must not reach the log."""
    hook = crm_hook(crm_sandbox)
    assert hook.find_duplicate(email=EMAIL, phone=PHONE) is None
    text = logs()
    assert "/contacts/search/duplicate" in text  # the request line was logged (the check below is not vacuous)
    for value in _forbidden(crm_sandbox.location(0).token):
        assert value not in text


def test_timeout_on_the_duplicate_lookup(crm_sandbox, logs):
    crm_sandbox.set_faults(hang_share=1.0, hang_seconds=1.5, path_prefixes=["/contacts/search/duplicate"])
    hook = crm_hook(crm_sandbox, retry=TWO_TRIES)
    with pytest.raises(errors.ApiTimeoutError) as info:
        hook.find_duplicate(email=EMAIL, phone=PHONE)
    assert hook.calls["GET /contacts/search/duplicate"] == 2
    assert_clean(info.value, logs(), crm_sandbox.location(0).token)


def test_timeout_on_a_write_with_patient_data(crm_sandbox, logs):
    crm_sandbox.set_faults(hang_share=1.0, hang_seconds=1.5)
    hook = crm_hook(crm_sandbox, retry=TWO_TRIES)
    with pytest.raises(errors.AmbiguousWriteError) as info:  # not repeated: it cannot be checked
        hook.send_email({"contactId": "A" * 20, "emailTo": EMAIL, "html": f"<p>{DOB}</p>"})
    assert_clean(info.value, logs(), crm_sandbox.location(0).token)


def test_non_json_success_body(crm_sandbox, logs):
    """A 2xx whose body is not JSON (here: bytes holding patient data) -> MalformedResponseError, body not kept."""
    hook = crm_hook(crm_sandbox)
    uploaded = hook.upload_file(
        name="notes.txt", content=f"{EMAIL} {PHONE} {DOB}".encode(), content_type="text/plain", parent_id=None
    )
    with pytest.raises(errors.MalformedResponseError) as info:
        hook.request("GET", f"/_sandbox/media/{uploaded['fileId']}", op="GET /_sandbox/media/{id}")
    assert_clean(info.value, logs(), crm_sandbox.location(0).token)


def test_cherry_failures_keep_the_key_out(cherry_sandbox, logs):
    key = cherry_sandbox.practices[0].api_key
    cherry_sandbox.set_faults(script=["500", "hang", "429_no_retry_after"], hang_seconds=1.5)
    hook = cherry_hook(cherry_sandbox)
    hook.get_practice()  # three failures, then success
    with pytest.raises(errors.AuthError) as info:
        cherry_hook(cherry_sandbox, api_key=key + "x").get_practice()
    assert_clean(info.value, logs(), key, key + "x")
