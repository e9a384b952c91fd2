"""Tell the pipeline's operators, by email, when a Cherry Sync task has failed for good, or a threshold alert of a
practice was raised or recovered.

`OperatorsFailureNotifier` is every Cherry Sync task's `on_failure_callback` (see `dag_support.DEFAULT_ARGS`): it
runs once a task has no retries left, and sends a short plain-text + HTML email through the same SMTP connection
as the monthly reports (`cherry_sync_smtp`), to the addresses in that connection's `ops_email` extra (one address,
a comma-separated list, or a JSON list). No `ops_email`: the failure is only logged.

What the email holds: DAG, task, practice (slug), run id, try, the error's class and message, and the task log's
link. Product errors are written without patient data; anything else is passed through `safety.redact` first, as
for logs. Recipients never appear in a log line. Sending is best effort: a notification that cannot be sent is
logged (class of the error only) and never changes the task's outcome.

Alert notices (`send_alert_notice`, one per state change, see `cherry_sync.alerts`) go the same way and hold the
practice's slug, the DAG, the alert's kind and state, the measured value and threshold, the run's counts, its id and
a link to it in the Airflow UI: nothing else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk.bases.notifier import BaseNotifier

from cherry_sync.context import SMTP_CONN_ID

if TYPE_CHECKING:
    from cherry_sync.store import AlertState

log = logging.getLogger(__name__)

OPS_EMAIL_EXTRA = "ops_email"
NOTIFICATION_HEADER = "X-Cherry-Sync-Failure"
ALERT_HEADER = "X-Cherry-Sync-Alert"


def ops_recipients(extra: dict[str, Any]) -> list[str]:
    """The operators' addresses from an SMTP connection's extras (str, comma-separated str, or list)."""
    value = extra.get(OPS_EMAIL_EXTRA)
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return []
    return [str(v).strip() for v in value if isinstance(v, str) and "@" in v]


def failure_summary(context: dict[str, Any]) -> dict[str, str]:
    """What the email says, from the task's context: opaque ids, counts and the (redacted) error only."""
    from cherry_sync.safety import redact

    ti = context.get("ti")
    task = context.get("task")
    error = context.get("exception")
    practice = getattr(task, "practice", None)
    map_index = getattr(ti, "map_index", -1)
    try_number = getattr(ti, "try_number", None)
    max_tries = getattr(task, "retries", None)
    try:
        log_url = str(getattr(ti, "log_url", "") or "")
    except Exception:  # the URL needs [api] base_url; a notification must not fail on it
        log_url = ""
    return {
        "dag_id": str(getattr(ti, "dag_id", "") or getattr(context.get("dag"), "dag_id", "")),
        "task_id": str(getattr(ti, "task_id", "") or getattr(task, "task_id", "")),
        "practice": str(practice) if isinstance(practice, str) and practice else "",
        "map_index": "" if map_index in (None, -1) else str(map_index),
        "run_id": str(getattr(ti, "run_id", "") or context.get("run_id", "")),
        "attempt": f"{try_number} of {max_tries + 1}"
        if try_number and max_tries is not None
        else str(try_number or ""),
        "error_type": type(error).__name__ if error else "unknown",
        "error": redact(str(error))[:2000] if error else "no error was passed to the callback",
        "log_url": log_url,
    }


class OperatorsFailureNotifier(BaseNotifier):
    """on_failure_callback: email the operators (SMTP connection's `ops_email` extra) that a task failed."""

    def __init__(self, smtp_conn_id: str = SMTP_CONN_ID) -> None:
        super().__init__()
        self.smtp_conn_id = smtp_conn_id

    def notify(self, context) -> None:
        summary = failure_summary(context)
        where = f"{summary['dag_id']}.{summary['task_id']}" + (
            f" [{summary['practice']}]" if summary["practice"] else ""
        )
        send_to_operators(
            f"failure of {where}",
            subject=f"[Cherry Sync] {summary['dag_id']}: {summary['task_id']} failed"
            + (f" for {summary['practice']}" if summary["practice"] else ""),
            header=(NOTIFICATION_HEADER, f"{summary['dag_id']}/{summary['task_id']}/{summary['run_id']}"),
            template="failure_email",
            values=summary,
            smtp_conn_id=self.smtp_conn_id,
        )


def send_to_operators(
    what: str,
    *,
    subject: str,
    header: tuple[str, str],
    template: str,
    values: dict[str, Any],
    smtp_conn_id: str = SMTP_CONN_ID,
) -> bool:
    """Email the operators (the SMTP connection's `ops_email` extra) a plain-text + HTML message rendered from
    `<template>.txt.j2` / `<template>.html.j2`; True when the server accepted it.

    Best effort: a missing connection, no recipients or a refusing server is logged as "`what` not emailed: ..."
    (the error's class, never the recipients) and answers False.
    """
    from email import policy
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from cherry_sync.reports.render import template_environment
    from cherry_sync.smtp import SmtpConfigError, SmtpSendError, send_message, smtp_sender

    try:
        conn = BaseHook.get_connection(smtp_conn_id)
        recipients = ops_recipients(conn.extra_dejson or {})
        sender = smtp_sender(smtp_conn_id) if recipients else ""
    except (AirflowNotFoundException, SmtpConfigError) as exc:
        log.warning("%s not emailed: %s", what, exc)
        return False
    if not recipients:
        log.warning("%s not emailed: connection %r has no %s extra", what, smtp_conn_id, OPS_EMAIL_EXTRA)
        return False

    env = template_environment()
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="cherry-sync.invalid")
    msg[header[0]] = header[1]
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(env.get_template(f"{template}.txt.j2").render(**values))
    msg.add_alternative(env.get_template(f"{template}.html.j2").render(**values), subtype="html")
    try:
        send_message(msg, conn_id=smtp_conn_id)
    except SmtpSendError as exc:
        code = f", SMTP {exc.smtp_code}" if exc.smtp_code else ""
        log.error("%s not emailed: SMTP unreachable or refused (%s%s)", what, exc.error, code)
        return False
    log.info("%s emailed to %d operator address(es)", what, len(recipients))
    return True


def run_url(dag_id: str, run_id: str) -> str:
    """The DAG run's page in the Airflow UI (from `[api] base_url`), or '' when it cannot be known."""
    try:
        from airflow.sdk.configuration import conf

        base_url = conf.get("api", "base_url", fallback="http://localhost:8080/")
    except Exception:  # a notice must not fail on configuration
        return ""
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def alert_summary(state: AlertState, counts: Mapping[str, int] | None = None) -> dict[str, Any]:
    """What an alert notice says: slug, DAG, kind, state, value against threshold, the run's counts and link."""
    from cherry_sync.alerts import KIND_LABELS, SILENT

    if state.alert_kind == SILENT:
        runs = int(state.threshold or 0)
        value = f"{int(state.value or 0)} record(s) written"
        threshold = f"the {runs} successful run(s) before it all wrote something"
        rule = "a run that read records and wrote none, after runs that all wrote"
    else:
        value = f"{state.value or 0:.1f}%"
        threshold = f"{state.threshold or 0:g}%"
        rule = f"raised above {threshold}"
    return {
        "practice": state.practice_slug,
        "dag_id": state.dag_id,
        "kind": state.alert_kind,
        "label": KIND_LABELS.get(state.alert_kind, state.alert_kind),
        "raised": state.raised,
        "change": "raised" if state.raised else "recovered",
        "value": value,
        "threshold": threshold,
        "rule": rule,
        "since": state.since.strftime("%Y-%m-%d %H:%M UTC"),
        "run_id": state.last_run_id,
        "run_url": run_url(state.dag_id, state.last_run_id),
        "counts": dict(counts) if counts else {},
    }


def send_alert_notice(
    state: AlertState, counts: Mapping[str, int] | None = None, *, smtp_conn_id: str = SMTP_CONN_ID
) -> bool:
    """Email the operators that an alert was raised or recovered (one notice per state change); True when sent."""
    summary = alert_summary(state, counts)
    if summary["raised"]:
        subject = f"[Cherry Sync] alert: {summary['label']} for {summary['practice']} in {summary['dag_id']}"
    else:
        subject = f"[Cherry Sync] recovered: {summary['label']} for {summary['practice']} in {summary['dag_id']}"
    return send_to_operators(
        f"{summary['label']} {summary['change']} for {summary['practice']} in {summary['dag_id']}",
        subject=subject,
        header=(
            ALERT_HEADER,
            f"{state.practice_slug}/{state.dag_id}/{state.alert_kind}/{summary['change']}/{state.since.isoformat()}",
        ),
        template="alert_email",
        values=summary,
        smtp_conn_id=smtp_conn_id,
    )
