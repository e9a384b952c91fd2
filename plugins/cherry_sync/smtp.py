"""Sending a prebuilt email through an Airflow SMTP connection (`cherry_sync_smtp` by default).

The monthly reports and the operators' failure emails both go out here. `SmtpHook` from
apache-airflow-providers-smtp reads the connection (host, port, SSL/STARTTLS, login, `from_email` extra); the
message is sent over its client, because the hook's own `send_email_smtp` can only build an HTML-only
`multipart/mixed` message. Errors are re-raised as `SmtpSendError` with the exception's class and SMTP code only:
smtplib's messages and arguments carry recipient addresses, which stay out of logs.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
from email.message import EmailMessage
from email.utils import parseaddr

from cherry_sync.context import SMTP_CONN_ID
from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.reasons import ReasonCode

log = logging.getLogger(__name__)


class SmtpSendError(CherrySyncError):
    """The SMTP server did not accept the message (nothing about recipients in the message).

    `error` is the class of what went wrong (e.g. `SMTPDataError`), `smtp_code` the server's code if it gave one.
    """

    reason_code = ReasonCode.SEND_FAILED

    def __init__(self, error: str, smtp_code: int | None = None) -> None:
        self.error = error
        self.smtp_code = smtp_code
        code = f" (SMTP {smtp_code})" if smtp_code else ""
        super().__init__(f"the message was not sent: {error}{code}")

    def __reduce__(self) -> tuple[type[SmtpSendError], tuple[object, ...]]:
        return (type(self), (self.error, self.smtp_code))


class SmtpConfigError(CherrySyncError):
    """The SMTP connection is missing or incomplete: a person must fix it, retrying will not help."""

    reason_code = ReasonCode.SMTP_NOT_CONFIGURED
    disposition = Disposition.FAIL


def smtp_sender(conn_id: str = SMTP_CONN_ID) -> str:
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


def send_message(msg: EmailMessage, *, conn_id: str = SMTP_CONN_ID) -> int:
    """Deliver `msg` to the recipients in its To header; returns how many the server accepted."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    recipients = [address.addr_spec for address in msg["To"].addresses]
    try:
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            client = hook._smtp_client  # the provider exposes no public handle on its logged-in client
            if client is None:
                raise SmtpSendError("no SMTP client")
            refused = client.send_message(msg, to_addrs=recipients)
            # The message was accepted; a rude goodbye changes nothing.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()
    except SmtpSendError:
        raise
    except smtplib.SMTPResponseException as exc:
        raise SmtpSendError(type(exc).__name__, exc.smtp_code) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SmtpSendError(type(exc).__name__) from None
    except Exception as exc:  # the hook wraps connection problems in AirflowException
        raise SmtpSendError(type(exc).__name__) from None
    if refused:
        log.warning("the SMTP server refused %d of %d recipient(s)", len(refused), len(recipients))
    return len(recipients) - len(refused)
