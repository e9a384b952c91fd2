"""Tell the pipeline's operators, by email, when a Cherry Sync task has failed for good.

`OperatorsFailureNotifier` is every Cherry Sync task's `on_failure_callback` (see `dag_support.DEFAULT_ARGS`): it
runs once a task has no retries left, and sends a short plain-text + HTML email through the same SMTP connection
as the monthly reports (`cherry_sync_smtp`), to the addresses in that connection's `ops_email` extra (one address,
a comma-separated list, or a JSON list). No `ops_email`: the failure is only logged.

What the email holds: DAG, task, practice (slug), run id, try, the error's class and message, and the task log's
link. Product errors are written without patient data; anything else is passed through `safety.redact` first, as
for logs. Recipients never appear in a log line. Sending is best effort: a notification that cannot be sent is
logged (class of the error only) and never changes the task's outcome.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from cherry_sync.context import SMTP_CONN_ID

log = logging.getLogger(__name__)

OPS_EMAIL_EXTRA = "ops_email"
NOTIFICATION_HEADER = "X-Cherry-Sync-Failure"


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
        from email import policy
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        from cherry_sync.reports.render import template_environment
        from cherry_sync.smtp import SmtpConfigError, SmtpSendError, send_message, smtp_sender

        summary = failure_summary(context)
        where = f"{summary['dag_id']}.{summary['task_id']}" + (
            f" [{summary['practice']}]" if summary["practice"] else ""
        )
        try:
            conn = BaseHook.get_connection(self.smtp_conn_id)
            recipients = ops_recipients(conn.extra_dejson or {})
            sender = smtp_sender(self.smtp_conn_id) if recipients else ""
        except (AirflowNotFoundException, SmtpConfigError) as exc:
            log.warning("failure of %s not emailed: %s", where, exc)
            return
        if not recipients:
            log.warning(
                "failure of %s not emailed: connection %r has no %s extra", where, self.smtp_conn_id, OPS_EMAIL_EXTRA
            )
            return

        env = template_environment()
        msg = EmailMessage(policy=policy.SMTP)
        msg["Subject"] = f"[Cherry Sync] {summary['dag_id']}: {summary['task_id']} failed" + (
            f" for {summary['practice']}" if summary["practice"] else ""
        )
        msg["From"] = sender
        msg["To"] = ", ".join(recipients)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="cherry-sync.invalid")
        msg[NOTIFICATION_HEADER] = f"{summary['dag_id']}/{summary['task_id']}/{summary['run_id']}"
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(env.get_template("failure_email.txt.j2").render(**summary))
        msg.add_alternative(env.get_template("failure_email.html.j2").render(**summary), subtype="html")
        try:
            send_message(msg, conn_id=self.smtp_conn_id)
        except SmtpSendError as exc:
            code = f", SMTP {exc.smtp_code}" if exc.smtp_code else ""
            log.error("failure of %s not emailed: SMTP unreachable or refused (%s%s)", where, exc.error, code)
            return
        log.info("failure of %s emailed to %d operator address(es)", where, len(recipients))
