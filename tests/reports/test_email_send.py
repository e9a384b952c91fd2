"""The report end to end against a real Cherry sandbox, a real store and a real SMTP server on loopback.

Expected figures are recomputed in the test from the sandbox's admin dumps and the store's rows
(tests/reports/conftest.py), never with the report code.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cherry_sync.reports.run import ALREADY_SENT, NO_RECIPIENTS, RENDERED, SENT, SendInterrupted, run_practice_report
from cherry_sync.reports.window import ReportWindow, resolve_window
from cherry_sync.smtp import SmtpSendError, send_message, smtp_sender
from tests.reports.conftest import RECIPIENTS, ReportEnv
from tests.reports.helpers import text_figures

APPLICATION_LABELS = ("Applications started", "Applications completed", "Approvals", "Approval rate", "Amount approved")
STORE_WINDOW_LABELS = (
    "Payments completed",
    "Payment volume",
    "Refunds",
    "Amount refunded",
    "Cancellations",
    "Amount cancelled",
    "Net volume",
    "Average ticket",
)
PATIENT_LABELS = (
    "Patients with an active Cherry account",
    "Available to spend (active accounts)",
    "Patients eligible for a higher limit",
)


def _window(env: ReportEnv, index: int = 0) -> ReportWindow:
    practice = env.practices[index]
    return resolve_window(practice.timezone, reference=datetime.now(UTC), end_date=env.last_full_day(index))


def _run(env: ReportEnv, index: int, window: ReportWindow, out: Path, **kwargs):
    practice = env.practices[index]
    send = kwargs.pop("send", True)
    return run_practice_report(
        practice,
        env.store,
        env.hook(index),
        window,
        send=send,
        run_id=kwargs.pop("run_id", "test-run"),
        sender=smtp_sender() if send else None,
        deliver=send_message if send else None,
        output_dir=out,
        **kwargs,
    )


def _bodies(message) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def _threshold_label(env: ReportEnv, index: int) -> str:
    threshold = env.practices[index].options.segments.balance_threshold
    return f"Patients with ${threshold:,.0f}+ available"


def test_report_reaches_its_recipients_once_with_the_sources_figures(report_env, smtp_connection, tmp_path):
    env, smtp = report_env, smtp_connection
    env.practice(0)
    env.load_store(0)
    window = _window(env)

    outcome = _run(env, 0, window, tmp_path)

    assert outcome.outcome == SENT and outcome.accepted == 2
    [received] = smtp.messages
    assert sorted(received.rcpt_tos) == sorted(RECIPIENTS[0])
    message = received.message
    assert sorted(a.addr_spec for a in message["To"].addresses) == sorted(RECIPIENTS[0])
    assert message["From"].addresses[0].addr_spec == "reports@aesthetix.example"
    assert message["X-Cherry-Sync-Report"] == f"glow-aesthetics/{window.start}/{window.end}"

    # Structure: text and HTML alternatives, the chart inline in the HTML's related part, referenced by cid.
    assert message.get_content_type() == "multipart/alternative"
    text_part, related = list(message.iter_parts())
    assert text_part.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, image = list(related.iter_parts())
    assert html_part.get_content_type() == "text/html"
    assert image.get_content_type() == "image/png" and image.get_content_disposition() == "inline"
    assert image.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    cid = image["Content-ID"].strip("<>")
    text, html = _bodies(message)
    assert f'src="cid:{cid}"' in html
    assert 'alt="Weekly payment volume chart over 13 weeks' in html
    assert "PAYMENT VOLUME PER WEEK" in text  # the chart's text alternative: a weekly table

    # Figures equal what the sources say, in both bodies; window figures carry last period's value.
    shown = text_figures(text)
    expected = env.expected(0, window.start, window.end)
    before = env.expected(0, window.previous().start, window.previous().end)
    expected[_threshold_label(env, 0)] = expected.pop("threshold")
    before.pop("threshold")
    for label, value in expected.items():
        assert shown[label][0] == value, label
        assert f">{value}<" in html, label
    for label in (*APPLICATION_LABELS, *STORE_WINDOW_LABELS):
        change = shown[label][1]
        assert change == "■ no change" if before[label] == expected[label] else f"(was {before[label]})" in change
    for label in PATIENT_LABELS:
        assert shown[label][1] == "", "point-in-time figures carry no change"
    assert int(expected["Payments completed"].replace(",", "")) > 0, "the sandbox should have activity"

    sent = env.store.get_report_send("glow-aesthetics", window.start, window.end)
    assert sent.status == "sent" and sent.message_id == message["Message-ID"] and sent.recipients_count == 2
    assert sent.figures["payments_completed"]["value"] == expected["Payments completed"].replace(",", "")
    assert [Path(p).name for p in outcome.files] == [
        f"glow-aesthetics_{window.end}.html",
        f"glow-aesthetics_{window.end}.txt",
        f"glow-aesthetics_{window.end}_chart.png",
    ]
    assert all(Path(p).stat().st_size > 0 for p in outcome.files)

    # Re-runs and retries send nothing more, and do not even ask Cherry again; force sends once more.
    again = _run(env, 0, window, tmp_path, run_id="another-run")
    assert again.outcome == ALREADY_SENT and again.api_calls == {}
    assert len(smtp.messages) == 1
    forced = _run(env, 0, window, tmp_path, force=True)
    assert forced.outcome == SENT and len(smtp.messages) == 2
    assert env.store.get_report_send("glow-aesthetics", window.start, window.end).attempts == 2


def test_metrics_endpoint_down_still_sends_a_report_that_says_so(report_env_sqlite, smtp_connection, tmp_path):
    env = report_env_sqlite
    env.practice(1)
    env.load_store(1)
    window = _window(env, 1)
    env.cherry.set_faults(server_error_share=1.0, path_prefixes=["/v1/reports/metrics"])

    outcome = _run(env, 1, window, tmp_path)

    assert outcome.outcome == SENT and outcome.metrics_available is False and outcome.store_available is True
    [received] = smtp_connection.messages
    assert received.rcpt_tos == tuple(RECIPIENTS[1])
    text, html = _bodies(received.message)
    shown = text_figures(text)
    for label in APPLICATION_LABELS:
        assert shown[label] == ("unavailable", ""), label
    assert shown["Share paid at 0% APR"] == ("unavailable", "")
    assert "APPLICATION FIGURES UNAVAILABLE" in text and "server_error" in text
    assert "Application figures unavailable" in html
    expected = env.expected(1, window.start, window.end)
    for label in (*STORE_WINDOW_LABELS, *PATIENT_LABELS):
        assert shown[label][0] == expected[label], label


def test_a_practice_with_no_activity_gets_a_clear_report(store, sandbox_envs, smtp_connection, tmp_path):
    env = sandbox_envs.build(ReportEnv, store=store, cherry={"practices": 1, "patients_per_practice": 0})
    env.practice(0)
    env.load_store(0)
    window = _window(env)

    outcome = _run(env, 0, window, tmp_path)

    assert outcome.outcome == SENT
    [received] = smtp_connection.messages
    text, html = _bodies(received.message)
    shown = text_figures(text)
    assert shown["Net volume"] == ("$0.00", "■ no change")
    assert shown["Payments completed"] == ("0", "■ no change")
    assert shown["Approval rate"][0] == "n/a (none completed)"
    assert shown["Average ticket"][0] == "n/a (no payments)"
    assert shown["Patients with an active Cherry account"] == ("0", "")
    assert "A QUIET 90 DAYS" in text and "no payments in these 90 days" in text
    for body in (text, html):
        assert not re.search(r"\bNone\b|\bnan\b|\bNaN\b|Decimal\(|\bNaT\b", body)


def test_a_practice_not_synced_yet_gets_cherrys_figures_and_no_invented_zeros(
    report_env_sqlite, smtp_connection, tmp_path
):
    env = report_env_sqlite
    env.practice(0)  # registered, but no backfill ever completed: the store holds nothing for it
    window = _window(env)

    outcome = _run(env, 0, window, tmp_path)

    assert outcome.outcome == SENT and outcome.store_available is False and outcome.metrics_available is True
    text, _ = _bodies(smtp_connection.messages[0].message)
    shown = text_figures(text)
    for label in (*STORE_WINDOW_LABELS, *PATIENT_LABELS):
        assert shown[label] == ("unavailable", ""), label
    assert shown["Approvals"][0] == env.expected(0, window.start, window.end)["Approvals"]
    assert "PAYMENT AND PATIENT FIGURES UNAVAILABLE" in text
    assert "PAYMENT VOLUME PER WEEK" not in text


def test_a_refused_send_is_recorded_and_the_next_attempt_sends(report_env_sqlite, smtp_connection, tmp_path):
    env = report_env_sqlite
    env.practice(0)
    env.load_store(0)
    window = _window(env)
    smtp_connection.reject_next(1)

    with pytest.raises(SmtpSendError) as failure:
        _run(env, 0, window, tmp_path)

    assert failure.value.smtp_code == 451
    assert not any(address in str(failure.value) for address in RECIPIENTS[0])
    row = env.store.get_report_send("glow-aesthetics", window.start, window.end)
    assert row.status == "failed" and row.error == "SMTPDataError"
    assert smtp_connection.messages == []

    retry = _run(env, 0, window, tmp_path)
    assert retry.outcome == SENT and len(smtp_connection.messages) == 1


def test_an_interrupted_send_is_not_guessed_at_but_force_sends(report_env_sqlite, smtp_connection, tmp_path):
    env = report_env_sqlite
    env.practice(0)
    env.load_store(0)
    window = _window(env)
    # A worker killed mid-send leaves its claim behind: delivery unknown.
    env.store.claim_report_send("glow-aesthetics", window.start, window.end, run_id="killed", recipients_count=2)

    with pytest.raises(SendInterrupted, match="force=true"):
        _run(env, 0, window, tmp_path)
    assert smtp_connection.messages == []

    assert _run(env, 0, window, tmp_path, force=True).outcome == SENT
    assert len(smtp_connection.messages) == 1


def test_no_recipients_skips_the_practice_and_send_off_only_renders(report_env_sqlite, smtp_connection, tmp_path):
    env = report_env_sqlite
    env.practice(0, report_recipients=[])
    env.load_store(0)
    window = _window(env)

    skipped = _run(env, 0, window, tmp_path / "skipped")
    assert skipped.outcome == NO_RECIPIENTS and skipped.files == [] and skipped.api_calls == {}

    rendered = _run(env, 0, window, tmp_path / "preview", send=False)
    assert rendered.outcome == RENDERED
    assert sorted(p.name for p in (tmp_path / "preview").iterdir()) == sorted(Path(p).name for p in rendered.files)
    assert smtp_connection.messages == []
    assert env.store.list_report_sends() == []


def test_logs_and_outcome_hold_no_addresses_and_no_patient_data(report_env_sqlite, smtp_connection, tmp_path, caplog):
    env = report_env_sqlite
    env.practice(0)
    env.load_store(0)
    window = _window(env)
    patients = env.cherry.admin("GET", f"/practices/{env.cherry.practices[0].id}/patients")
    secrets = {p[k] for p in patients for k in ("last_name", "email", "phone") if p.get(k) and len(p[k]) > 4}

    with caplog.at_level(logging.DEBUG):
        outcome = _run(env, 0, window, tmp_path)

    logged = caplog.text + repr(outcome.as_dict())
    assert outcome.outcome == SENT
    assert not [address for address in RECIPIENTS[0] if address in logged]
    assert not [value for value in secrets if value in logged]
