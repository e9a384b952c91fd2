"""The one failure handler (`PracticeOperator.execute`): each disposition's Airflow outcome and run-ledger row,
for a task of one practice and for a batch of several (each practice isolated; a retry redoes only what failed).

In-process, against a real SQLite store and a real registry file: a practice operator whose work raises the error
under test (or returns a summary) stands in for a feature. Which exception Airflow gets decides the task's state:
`AirflowFailException` fails it without retries, `AirflowSkipException` skips it, anything else fails it and lets
Airflow retry. The product's own errors are covered end to end in `test_practice_failures.py` and
`tests/reports/test_operator.py`; this pins the mapping itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, AirflowTaskTimeout

from cherry_sync.batches import batch_of
from cherry_sync.errors import CherrySyncError, Disposition, PracticeFailed
from cherry_sync.hooks.errors import AuthError, DailyBudgetExhaustedError
from cherry_sync.operators.practice import PracticeOperator
from cherry_sync.reasons import ReasonCode
from cherry_sync.store import RunCounts, engine_from_url, store_from_engine

SLUG = "glow-aesthetics"


class _Configuration(CherrySyncError):
    reason_code = ReasonCode.PIPELINE_NOT_FOUND
    disposition = Disposition.FAIL
    advice = "Fix the registry."


class _NothingToDo(CherrySyncError):
    reason_code = ReasonCode.NO_RECIPIENTS
    disposition = Disposition.SKIP


class _Transient(CherrySyncError):
    reason_code = ReasonCode.SEND_FAILED  # RETRY is the default disposition


@dataclass
class _Report:
    read: int

    def as_dict(self) -> dict[str, Any]:
        return {"practice": SLUG, "read": self.read}

    def ledger_counts(self) -> RunCounts:
        return RunCounts(read=self.read, created=2, rejected=1)


class _Work(PracticeOperator):
    """A feature whose work is `outcome`: raised when it is an exception, returned otherwise."""

    def __init__(self, *, outcome: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outcome = outcome  # one outcome, or one per practice (slug -> outcome)

    def run_for_practice(self, ctx, dry_run, arguments):
        outcome = self.outcome[ctx.slug] if isinstance(self.outcome, dict) else self.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@pytest.fixture
def store(tmp_path, monkeypatch):
    registry = tmp_path / "practices.yml"
    registry.write_text(
        yaml.safe_dump(
            [
                {
                    "slug": SLUG,
                    "display_name": "Glow",
                    "timezone": "America/New_York",
                    "cherry_conn_id": "cherry_glow",
                    "crm_conn_id": "crm_glow",
                },
                *(
                    {
                        "slug": slug,
                        "display_name": slug.title(),
                        "timezone": "America/New_York",
                        "cherry_conn_id": f"cherry_{slug}",
                        "crm_conn_id": f"crm_{slug}",
                    }
                    for slug in ("lumen", "harbor")
                ),
                {
                    "slug": "paused",
                    "display_name": "Paused",
                    "timezone": "America/New_York",
                    "cherry_conn_id": "cherry_paused",
                    "crm_conn_id": "crm_paused",
                    "enabled": False,
                },
            ]
        )
    )
    monkeypatch.setenv("CHERRY_SYNC_REGISTRY", str(registry))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CHERRY_SYNC_STORE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "store.db")})
    )
    return store_from_engine(engine_from_url(f"sqlite:///{tmp_path / 'store.db'}"))


def _execute(outcome: Any, run_id: str, practice: str = SLUG, *more: str):
    with DAG("dispositions_test", schedule=None):
        op = _Work(task_id="work", batch=batch_of(practice, *more), outcome=outcome)
    return op.execute({"run_id": run_id})


def _ledger(store, run_id: str):
    [entry] = store.list_runs(run_id=run_id)
    return entry


def test_fail_now_is_an_airflow_fail_with_the_advice_and_a_failed_ledger_row(store):
    with pytest.raises(AirflowFailException) as failed:
        _execute(_Configuration("the registry's pipeline is not in this location"), "fail")

    assert str(failed.value) == (f"practice {SLUG}: the registry's pipeline is not in this location. Fix the registry.")
    entry = _ledger(store, "fail")
    assert (entry.status, entry.details["reason"]) == ("failed", "pipeline_not_found")


def test_an_api_failure_a_person_must_fix_names_the_connection_and_keeps_its_context(store):
    error = AuthError("GET /v1/practice", "invalid key", status=401)
    error.service, error.conn_id = "cherry", "cherry_glow"

    with pytest.raises(AirflowFailException, match="rejected the API key of Airflow connection 'cherry_glow'"):
        _execute(error, "auth")

    details = _ledger(store, "auth").details
    assert {k: details[k] for k in ("reason", "operation", "service", "conn_id", "status")} == {
        "reason": "auth_failed",
        "operation": "GET /v1/practice",
        "service": "cherry",
        "conn_id": "cherry_glow",
        "status": 401,
    }


def test_defer_is_a_skip_and_a_deferred_ledger_row(store):
    error = DailyBudgetExhaustedError("POST /contacts/upsert", "daily request budget used up; deferring")
    error.service, error.conn_id = "crm", "crm_glow"

    with pytest.raises(AirflowSkipException, match="deferred: the CRM location's daily request budget is used up"):
        _execute(error, "defer")

    entry = _ledger(store, "defer")
    assert (entry.status, entry.details["reason"]) == ("deferred", "daily_budget_exhausted")


def test_skip_is_a_skip_and_a_skipped_ledger_row(store):
    with pytest.raises(AirflowSkipException, match=f"practice {SLUG}: nothing to send"):
        _execute(_NothingToDo("nothing to send"), "skip")

    entry = _ledger(store, "skip")
    assert (entry.status, entry.details["reason"]) == ("skipped", "no_recipients")


def test_a_disabled_practice_is_skipped_before_any_ledger_row(store):
    with pytest.raises(AirflowSkipException, match="practice paused: disabled in the registry"):
        _execute(None, "disabled", practice="paused")

    assert store.list_runs(run_id="disabled") == []


def test_retry_is_re_raised_without_the_chained_cause_for_airflow_s_retries(store):
    cause = ValueError("https://api.example/v1?api_key=secret")
    try:
        raise _Transient("the message was not sent: SMTPDataError (SMTP 451)") from cause
    except _Transient as error:
        transient = error

    with pytest.raises(PracticeFailed) as failed:
        _execute(transient, "retry")

    assert not isinstance(failed.value, (AirflowFailException, AirflowSkipException))
    assert str(failed.value) == f"practice {SLUG}: the message was not sent: SMTPDataError (SMTP 451)"
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    assert failed.value.reason_code is ReasonCode.SEND_FAILED
    entry = _ledger(store, "retry")
    assert (entry.status, entry.details["reason"]) == ("failed", "send_failed")


def test_an_unexpected_error_is_retried_without_its_message_and_the_ledger_names_its_class(store):
    with pytest.raises(PracticeFailed) as failed:
        _execute(KeyError("patient-value"), "bug")

    assert str(failed.value) == f"practice {SLUG}: unexpected KeyError"  # a library's message may hold data
    assert failed.value.reason_code is ReasonCode.UNEXPECTED_ERROR
    entry = _ledger(store, "bug")
    assert (entry.status, entry.details["reason"]) == ("failed", "KeyError")


def test_a_try_ended_by_its_timeout_is_recorded_and_still_ends_the_task(store):
    with pytest.raises(AirflowTaskTimeout):
        _execute(AirflowTaskTimeout(), "timeout")

    entry = _ledger(store, "timeout")
    assert (entry.status, entry.details["reason"]) == ("failed", "task_timeout")


def test_success_records_the_summary_s_own_counts_and_returns_its_dict(store):
    result = _execute(_Report(read=7), "ok")

    assert result == {"practices": {SLUG: {"status": "success", "practice": SLUG, "read": 7}}}
    entry = _ledger(store, "ok")
    assert entry.status == "success" and entry.details["read"] == 7
    assert (entry.counts.read, entry.counts.created, entry.counts.rejected, entry.counts.api_calls) == (7, 2, 1, 0)


class _Redone(Exception):
    """Raised by a practice an earlier try already settled: a retry must not run it again."""


def _by_slug(store, run_id: str) -> dict[str, Any]:
    return {entry.practice_slug: entry for entry in store.list_runs(run_id=run_id)}


def test_a_batch_isolates_its_practices_and_its_retry_redoes_only_what_failed(store):
    bad_config = _Configuration("the registry's pipeline is not in this location")
    transient = _Transient("the message was not sent: SMTPDataError (SMTP 451)")

    # First try: glow works, lumen needs a person, harbor fails in a way a retry may cure.
    with pytest.raises(PracticeFailed) as first:
        _execute({SLUG: _Report(read=3), "lumen": bad_config, "harbor": transient}, "batch", SLUG, "lumen", "harbor")

    message = str(first.value)
    assert "practice lumen: the registry's pipeline is not in this location. Fix the registry." in message
    assert "practice harbor: the message was not sent" in message
    assert f"practice {SLUG}" not in message and "(1 other practice(s) of this task done)" in message
    assert first.value.reason_code is ReasonCode.SEND_FAILED  # the retryable one decides: Airflow retries
    ledger = _by_slug(store, "batch")
    assert {slug: (e.status, e.details.get("reason")) for slug, e in ledger.items()} == {
        SLUG: ("success", None),
        "lumen": ("failed", "pipeline_not_found"),
        "harbor": ("failed", "send_failed"),
    }

    # The retry: only harbor runs again (the others would raise _Redone), and it now succeeds; lumen stays failed,
    # without retries, so the task fails for good naming it.
    with pytest.raises(AirflowFailException) as second:
        _execute({SLUG: _Redone(), "lumen": _Redone(), "harbor": _Report(read=5)}, "batch", SLUG, "lumen", "harbor")

    assert str(second.value).startswith("practice lumen: pipeline_not_found (in an earlier try)")
    ledger = _by_slug(store, "batch")
    assert {slug: (e.status, e.attempts) for slug, e in ledger.items()} == {
        SLUG: ("success", 1),
        "lumen": ("failed", 1),
        "harbor": ("success", 2),
    }
    assert ledger["harbor"].counts.read == 5


def test_a_batch_with_a_deferred_practice_succeeds_for_the_others(store):
    budget = DailyBudgetExhaustedError("POST /contacts/upsert", "daily request budget used up; deferring")

    result = _execute(
        {SLUG: _Report(read=2), "lumen": budget, "harbor": _Report(read=4)}, "mixed", SLUG, "lumen", "harbor"
    )

    assert result["practices"]["lumen"] == {"status": "deferred", "reason": "daily_budget_exhausted"}
    assert result["practices"]["harbor"]["read"] == 4
    assert _by_slug(store, "mixed")["lumen"].status == "deferred"


def test_a_batch_where_nothing_ran_is_skipped(store):
    budget = DailyBudgetExhaustedError("POST /contacts/upsert", "daily request budget used up; deferring")

    with pytest.raises(AirflowSkipException, match="practice lumen deferred: .*; practice paused: disabled"):
        _execute({"lumen": budget}, "none", "lumen", "paused")

    assert set(_by_slug(store, "none")) == {"lumen"}  # a disabled practice gets no ledger row
