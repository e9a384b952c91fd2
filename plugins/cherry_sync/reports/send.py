"""The report as an email (delivered by `cherry_sync.smtp.send_message` through the `cherry_sync_smtp` connection).

Message structure (what mail clients expect for HTML with inline images and a text fallback):

    multipart/alternative
    ├── text/plain                      the plain-text report (with the weekly table)
    └── multipart/related
        ├── text/html                   references the chart as <img src="cid:...">
        └── image/png                   the chart, Content-ID <...>, inline
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from cherry_sync.reports.render import RenderedReport

REPORT_HEADER = "X-Cherry-Sync-Report"


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
