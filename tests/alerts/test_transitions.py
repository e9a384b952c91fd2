"""Threshold alerts through `summarize_run`: one notice when raised, none while it holds, one when it recovers.

Real store (SQLite and PostgreSQL), real SMTP server on loopback, the registry file the DAGs read.
"""

from __future__ import annotations

from cherry_sync.notify import ALERT_HEADER
from tests.alerts.conftest import BACKFILL, GLOW, LUMEN, OPS, REFRESH, practice_entry


def _states(env, slug=GLOW, dag_id=REFRESH) -> dict[str, str]:
    return {s.alert_kind: s.state for s in env.store.alert_states(slug, dag_id=dag_id)}


def _subjects(env) -> list[str]:
    return [m["Subject"].strip() for m in env.notices()]


def reads(read: int, rejected: int = 0, written: int | None = None, **spec) -> dict:
    """A practice's run: `read` records, `rejected` of them rejected, the rest written (updated) by default."""
    return {"read": read, "rejected": rejected, "updated": read - rejected if written is None else written, **spec}


def test_rejection_rate_raised_once_held_without_repeats_then_recovered_once(alert_env):
    env = alert_env
    env.run(practices={GLOW: reads(100, 5)})  # 5 %: fine (default threshold 10 %)
    assert env.notices() == []
    assert _states(env)["rejection_rate"] == "ok"

    summary = env.run(practices={GLOW: reads(100, 30)})  # 30 %: raised
    assert _subjects(env) == [f"[Cherry Sync] alert: rejection rate for {GLOW} in {REFRESH}"]
    assert {"practice": GLOW, "kind": "rejection_rate", "state": "raised"} in summary["alerts"]
    raised = next(s for s in env.store.alert_states(GLOW) if s.alert_kind == "rejection_rate")
    assert raised.value == 30.0 and raised.threshold == 10.0 and raised.notified_at is not None

    for rejected in (40, 25, 11):  # still above: no new notice, the state keeps its start
        env.run(practices={GLOW: reads(100, rejected)})
    assert len(env.notices()) == 1
    held = next(s for s in env.store.alert_states(GLOW) if s.alert_kind == "rejection_rate")
    assert held.raised and held.since == raised.since and held.value == 11.0

    env.run(practices={GLOW: reads(100, 10)})  # exactly at the threshold is not above it: recovered
    env.run(practices={GLOW: reads(100, 2)})
    assert _subjects(env)[1:] == [f"[Cherry Sync] recovered: rejection rate for {GLOW} in {REFRESH}"]
    assert _states(env)["rejection_rate"] == "ok"

    env.run(practices={GLOW: reads(100, 50)})  # raised again: a new notice
    assert len(env.notices()) == 3


def test_notice_content_and_recipients(alert_env):
    env = alert_env
    env.run(practices={GLOW: reads(200, 50)}, run_id="scheduled__2027-01-02T10:00:00+00:00")

    [received] = env.smtp.messages
    assert received.rcpt_tos == (OPS,)
    msg = received.message
    assert msg[ALERT_HEADER].startswith(f"{GLOW}/{REFRESH}/rejection_rate/raised/")
    assert msg["Auto-Submitted"].strip() == "auto-generated"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for body in (text, html):
        assert GLOW in body and REFRESH in body and "rejection rate" in body
        assert "25.0%" in body and "10%" in body
        assert "200 read" in body and "50 rejected" in body
        assert "scheduled__2027-01-02T10:00:00+00:00" in body
        # The link to the run in the Airflow UI ([api] base_url), with the run id quoted.
        assert f"/dags/{REFRESH}/runs/scheduled__2027-01-02T10%3A00%3A00%2B00%3A00" in body


def test_crm_failure_rate_from_the_ledger_details(alert_env):
    env = alert_env

    def failing(failed: int, written: int = 95) -> dict:
        # The refresh's details: the CRM refused `failed` contacts; a warning and a parse rejection do not count.
        return {
            "read": 120,
            "updated": written,
            "rejected": failed + 2,
            "details": {
                "patients": {
                    "rejects_by_reason": {"crm_rejected": failed, "missing_id": 2},
                    "warnings_by_reason": {"invalid_phone": 40},
                }
            },
        }

    env.run(practices={GLOW: failing(2)})  # 2 of 97: 2.1 %, under 5 %
    assert _states(env)["crm_failure_rate"] == "ok"
    env.run(practices={GLOW: failing(10, written=90)})  # 10 of 100: raised
    env.run(practices={GLOW: failing(20, written=80)})  # held
    crm = [s for s in _subjects(env) if "CRM write failure rate" in s]
    assert crm == [f"[Cherry Sync] alert: CRM write failure rate for {GLOW} in {REFRESH}"]
    state = next(s for s in env.store.alert_states(GLOW) if s.alert_kind == "crm_failure_rate")
    assert state.raised and state.value == 20.0 and state.threshold == 5.0
    # The rejection rate (22 of 120) is a separate alert with its own notice.
    assert _states(env)["rejection_rate"] == "raised"
    assert _subjects(env).count(f"[Cherry Sync] alert: rejection rate for {GLOW} in {REFRESH}") == 1

    env.run(practices={GLOW: failing(0, written=100)})
    crm = [s for s in _subjects(env) if "CRM write failure rate" in s]
    assert crm[1:] == [f"[Cherry Sync] recovered: CRM write failure rate for {GLOW} in {REFRESH}"]


def test_crm_failure_rate_counts_smart_list_pairs_that_failed(alert_env):
    env = alert_env
    details = {"failed": 30, "failed_by_reason": {"server_error": 20, "crm_contact_missing": 10}}
    env.run(
        "cherry_smart_list", {GLOW: {"read": 500, "created": 40, "updated": 30, "rejected": 30, "details": details}}
    )
    state = next(
        s for s in env.store.alert_states(GLOW, dag_id="cherry_smart_list") if s.alert_kind == "crm_failure_rate"
    )
    assert state.raised and state.value == 30.0  # 30 of 40 + 30 + 30


def test_silent_run_raised_once_held_then_recovered_once(alert_env):
    env = alert_env
    for _ in range(5):
        env.run(practices={GLOW: reads(50, written=10)})
    assert _states(env)["silent"] == "ok"

    env.run(practices={GLOW: reads(50, written=0)})  # read 50, wrote nothing after 5 writing runs
    assert _subjects(env) == [f"[Cherry Sync] alert: silent run for {GLOW} in {REFRESH}"]
    text = env.notices()[0].get_body(("plain",)).get_content()
    assert "0 record(s) written" in text and "the 5 successful run(s) before it all wrote something" in text

    for _ in range(3):  # still silent: held, whatever the history now looks like
        env.run(practices={GLOW: reads(50, written=0)})
    env.run(practices={GLOW: reads(0, written=0)})  # read nothing: not measured, still raised
    env.run(practices={GLOW: reads(50, written=0, status="failed")})  # failed: not measured either
    assert len(env.notices()) == 1 and _states(env)["silent"] == "raised"

    env.run(practices={GLOW: reads(50, written=3)})
    assert _subjects(env)[1:] == [f"[Cherry Sync] recovered: silent run for {GLOW} in {REFRESH}"]
    assert _states(env)["silent"] == "ok"


def test_silent_needs_the_last_n_successful_runs_all_writing(alert_env):
    env = alert_env
    for _ in range(4):  # only four writing runs so far
        env.run(practices={GLOW: reads(50, written=10)})
    env.run(practices={GLOW: reads(50, written=0)})
    assert _states(env)["silent"] == "ok"

    # Five writing runs with a failed one and a dry run in between: those are not successful (real) runs.
    for index in range(5):
        env.run(practices={GLOW: reads(50, written=10)})
        if index == 2:
            env.run(practices={GLOW: reads(50, written=0, status="failed")})
            env.run(practices={GLOW: reads(50, written=50, details={"dry_run": True})})
    env.run(practices={GLOW: reads(50, written=0)})
    assert _states(env)["silent"] == "raised"
    assert len(env.notices()) == 1


def test_a_quiet_run_in_the_last_n_keeps_silence_ok(alert_env):
    env = alert_env
    for written in (10, 10, 0, 10, 10, 10):  # the third one read 50 and wrote nothing: within the last five
        env.run(practices={GLOW: reads(50, written=written)})
    env.run(practices={GLOW: reads(50, written=0)})
    assert _states(env)["silent"] == "ok" and env.notices() == []


def test_dry_runs_are_not_measured(alert_env):
    env = alert_env
    env.run(practices={GLOW: reads(100, 60, details={"dry_run": True})})
    assert env.store.alert_states(GLOW) == [] and env.notices() == []


def test_per_practice_and_dag_independently(alert_env):
    env = alert_env
    env.run(BACKFILL, {GLOW: reads(100, 1), LUMEN: reads(100, 1)})
    env.run(REFRESH, {GLOW: reads(100, 1), LUMEN: reads(100, 1)})
    lumen_before = env.store.alert_states(LUMEN)
    glow_backfill_before = env.store.alert_states(GLOW, dag_id=BACKFILL)

    env.run(REFRESH, {GLOW: reads(100, 40), LUMEN: reads(100, 1)})

    assert _subjects(env) == [f"[Cherry Sync] alert: rejection rate for {GLOW} in {REFRESH}"]
    assert _states(env, GLOW, REFRESH)["rejection_rate"] == "raised"
    assert env.store.alert_states(GLOW, dag_id=BACKFILL) == glow_backfill_before  # other DAG: untouched
    lumen_after = {(s.dag_id, s.alert_kind): s for s in env.store.alert_states(LUMEN)}
    for state in lumen_before:  # other practice: still ok, same since, nothing owed
        after = lumen_after[(state.dag_id, state.alert_kind)]
        assert after.state == "ok" and after.since == state.since and after.notified_at == state.notified_at

    # A run of another DAG (or one without GLOW) changes nothing about GLOW's refresh alert.
    env.run(BACKFILL, {GLOW: reads(100, 0), LUMEN: reads(100, 0)})
    env.run(REFRESH, {LUMEN: reads(100, 0)})
    assert _states(env, GLOW, REFRESH)["rejection_rate"] == "raised"
    assert len(env.notices()) == 1


def test_thresholds_come_from_the_registry(alert_env):
    env = alert_env
    env.write_registry(
        practice_entry(GLOW, {"rejection_rate_percent": 50, "crm_failure_rate_percent": 25, "silent_after_runs": 2}),
        practice_entry(LUMEN, {"enabled": False}),
    )
    failing = {"details": {"patients": {"rejects_by_reason": {"crm_rejected": 20}}}}
    env.run(practices={GLOW: reads(100, 40, written=80, **failing), LUMEN: reads(100, 90)})
    # 40 % rejected (under 50), 20 of 100 CRM writes failed (under 25): nothing raised; LUMEN is not evaluated.
    assert set(_states(env).values()) == {"ok"} and env.store.alert_states(LUMEN) == []
    assert env.notices() == []

    env.run(practices={GLOW: reads(100, 10)})  # a second writing run: with silent_after_runs 2 ...
    env.run(practices={GLOW: reads(100, 0, written=0)})  # ... this quiet run is silent
    assert _subjects(env) == [f"[Cherry Sync] alert: silent run for {GLOW} in {REFRESH}"]
    env.run(practices={GLOW: reads(100, 51, written=49)})  # it writes again, and 51 % is above 50: raised
    assert sorted(_subjects(env)[1:]) == [
        f"[Cherry Sync] alert: rejection rate for {GLOW} in {REFRESH}",
        f"[Cherry Sync] recovered: silent run for {GLOW} in {REFRESH}",
    ]
    state = next(s for s in env.store.alert_states(GLOW) if s.alert_kind == "rejection_rate")
    assert state.threshold == 50.0


def test_a_notice_that_could_not_be_sent_is_sent_at_the_next_run_once(alert_env, caplog):
    env = alert_env
    env.smtp.reject_next(1)
    env.run(practices={GLOW: reads(100, 30)})
    assert env.notices() == []
    state = next(s for s in env.store.alert_states(GLOW) if s.alert_kind == "rejection_rate")
    assert state.raised and state.notice_due
    assert "not emailed: SMTP unreachable or refused" in caplog.text and OPS not in caplog.text

    env.run(practices={GLOW: reads(100, 35)})  # still raised: the owed notice goes out now
    env.run(practices={GLOW: reads(100, 35)})
    assert _subjects(env) == [f"[Cherry Sync] alert: rejection rate for {GLOW} in {REFRESH}"]
    state = next(s for s in env.store.alert_states(GLOW) if s.alert_kind == "rejection_rate")
    assert not state.notice_due


def test_summarize_again_for_the_same_run_sends_nothing_more(alert_env):
    # A cleared or retried `summarize` evaluates the same run twice.
    env = alert_env
    env.run(practices={GLOW: reads(100, 30)}, run_id="manual__1")
    from cherry_sync.tasks import summarize_run

    summarize_run("manual__1", REFRESH)
    assert len(env.notices()) == 1
