"""The report as an email, and its delivery through an Airflow SMTP connection.

Message structure (what mail clients expect for HTML with inline images and a text fallback):

    multipart/alternative
    ├── text/plain                      the plain-text report (with the weekly table)
    └── multipart/related
        ├── text/html                   references the chart as <img src="cid:...">
        └── image/png                   the chart, Content-ID <...>, inline

Delivery uses `SmtpHook` from apache-airflow-providers-smtp for the connection (host, port, SSL/STARTTLS, login,
`from_email` extra) and sends this prebuilt message over its client: the hook's own `send_email_smtp` can only
build an HTML-only `multipart/mixed` message. Errors are re-raised as `ReportSendError` with the exception's class
and SMTP code only: smtplib's messages and arguments carry recipient addresses, which stay out of logs.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import uuid
from collections.abc import Sequence
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from cherry_sync.reports.render import RenderedReport

log = logging.getLogger(__name__)

DEFAULT_SMTP_CONN_ID = "cherry_sync_smtp"
REPORT_HEADER = "X-Cherry-Sync-Report"


class ReportSendError(Exception):
    """The SMTP server did not accept the report (nothing about recipients in the message)."""

    def __init__(self, reason: str, smtp_code: int | None = None) -> None:
        self.reason = reason
        self.smtp_code = smtp_code
        code = f" (SMTP {smtp_code})" if smtp_code else ""
        super().__init__(f"the report was not sent: {reason}{code}")


class SmtpConfigError(Exception):
    """The SMTP connection is missing or incomplete: a person must fix it, retrying will not help."""


def build_message(
    rendered: RenderedReport,
    *,
    sender: str,
    recipients: Sequence[str],
    report_key: str,
    sent_at: datetime,
) -> EmailMessage:
    """The MIME message for one report (see the module docstring for its structure)."""
    if not recipients:
        raise ValueError("a report needs at least one recipient")
    _, sender_address = parseaddr(sender)
    domain = sender_address.rpartition("@")[2] or "cherry-sync.invalid"
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = rendered.subject
    msg["From"] = sender
    msg["To"] = [Address(addr_spec=address) for address in recipients]
    msg["Date"] = format_datetime(sent_at)
    # Short enough never to be folded (some clients mishandle a folded Message-ID).
    msg["Message-ID"] = f"<report.{uuid.uuid4().hex[:24]}@{domain}>"
    msg[REPORT_HEADER] = report_key
    # RFC 3834: a machine-sent message; vacation responders should not answer it.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(rendered.text, subtype="plain", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    html_part = msg.get_payload()[1]
    html_part.add_related(
        rendered.chart_png,
        maintype="image",
        subtype="png",
        cid=f"<{rendered.chart_cid}>",
        filename="weekly-payment-volume.png",
        disposition="inline",
    )
    return msg


def smtp_sender(conn_id: str = DEFAULT_SMTP_CONN_ID) -> str:
    """The `from_email` extra of the SMTP connection (checked before anything is claimed or sent)."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = SmtpHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise SmtpConfigError(f"SMTP connection {conn_id!r} is not defined") from None
    if not conn.host:
        raise SmtpConfigError(f"SMTP connection {conn_id!r} has no host")
    sender = (conn.extra_dejson or {}).get("from_email")
    if not sender or "@" not in parseaddr(str(sender))[1]:
        raise SmtpConfigError(f"SMTP connection {conn_id!r} needs a from_email extra (the reports' sender)")
    return str(sender)


def send_message(msg: EmailMessage, *, conn_id: str = DEFAULT_SMTP_CONN_ID) -> int:
    """Deliver `msg` to the recipients in its To header; returns how many the server accepted."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    recipients = [address.addr_spec for address in msg["To"].addresses]
    try:
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            client = hook._smtp_client  # the provider exposes no public handle on its logged-in client
            if client is None:
                raise ReportSendError("no SMTP client")
            refused = client.send_message(msg, to_addrs=recipients)
            # The message was accepted; a rude goodbye changes nothing.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()
    except ReportSendError:
        raise
    except smtplib.SMTPResponseException as exc:
        raise ReportSendError(type(exc).__name__, exc.smtp_code) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise ReportSendError(type(exc).__name__) from None
    except Exception as exc:  # the hook wraps connection problems in AirflowException
        raise ReportSendError(type(exc).__name__) from None
    if refused:
        log.warning("the SMTP server refused %d of %d recipient(s)", len(refused), len(recipients))
    return len(recipients) - len(refused)
