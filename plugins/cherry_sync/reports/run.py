"""One practice's metrics report, end to end: window, figures, rendering, local files, send ledger, SMTP.

Plain Python over the Cherry hook and the store (the Airflow operator only resolves the practice, checks that its
time zones agree (`cherry_sync.sync.zones`: the window's days are Cherry's days only then) and maps the outcome to
a task state). The outcome holds counts and dates only: it goes to logs, the run ledger and XCom.

Exactly once: a report for a practice and window is claimed in the store's send ledger before the SMTP
conversation and marked sent after it, so a re-run or retry finds it sent and sends nothing more; `force` sends
again. A failure before the server accepted the message marks it failed (the next attempt may send); an attempt
interrupted mid-send leaves it `sending`, and the next run refuses to guess (`SendInterrupted`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.hooks import errors
from cherry_sync.hooks.cherry import CherryHook
from cherry_sync.reasons import ReasonCode
from cherry_sync.registry import PracticeConfig
from cherry_sync.reports.figures import MalformedMetrics, PracticeReport, SourceState, build_report, parse_metrics
from cherry_sync.reports.render import render_report, write_files
from cherry_sync.reports.send import build_message
from cherry_sync.reports.window import ReportWindow
from cherry_sync.smtp import SmtpSendError
from cherry_sync.store import RunCounts, SyncStore

log = logging.getLogger(__name__)

REPORT_DIR_ENV = "CHERRY_SYNC_REPORT_DIR"

# Outcomes (XCom, ledger details): what happened to the practice's report in this run.
SENT = "sent"
ALREADY_SENT = "already_sent"
RENDERED = "rendered"  # send switched off: rendered and written to the report folder only
NO_RECIPIENTS = ReasonCode.NO_RECIPIENTS.value


class SendInterrupted(CherrySyncError):
    """A previous attempt was interrupted while sending this report: it may or may not have been delivered.

    A person must check with the practice before anything is sent again: not retried.
    """

    reason_code = ReasonCode.SEND_INTERRUPTED
    disposition = Disposition.FAIL

    def __init__(self, slug: str, window: ReportWindow, claimed_at: datetime) -> None:
        self.slug, self.window, self.claimed_at = slug, window, claimed_at
        self.sentence = (
            f"an earlier attempt was interrupted while sending the report for {window.start}..{window.end} "
            f"(claimed {claimed_at:%Y-%m-%d %H:%M} UTC); it may have been delivered. Check with the practice, then "
            "trigger the DAG for this practice and end date with force=true to send it again."
        )
        super().__init__(f"practice {slug}: {self.sentence}")

    def describe(self) -> str:
        return self.sentence

    def __reduce__(self) -> tuple[type[SendInterrupted], tuple[object, ...]]:
        return (type(self), (self.slug, self.window, self.claimed_at))


class NoRecipients(CherrySyncError):
    """The practice has no report recipients in the registry: its task is skipped, nothing is sent."""

    reason_code = ReasonCode.NO_RECIPIENTS
    disposition = Disposition.SKIP

    def __init__(self) -> None:
        super().__init__("no report recipients (options.report_recipients in the registry); nothing sent")


@dataclass
class ReportOutcome:
    """What one practice's report run did (JSON-safe, no patient data, no addresses)."""

    practice: str
    outcome: str
    window_start: str
    window_end: str
    recipients: int = 0
    accepted: int = 0
    metrics_available: bool | None = None
    store_available: bool | None = None
    files: list[str] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def ledger_counts(self) -> RunCounts:
        """A report has no records to count: the ledger keeps its API calls and the outcome in the details."""
        return RunCounts()


def report_dir() -> Path:
    """Where rendered reports are written: `$CHERRY_SYNC_REPORT_DIR`, else `$AIRFLOW_HOME/reports`."""
    override = os.environ.get(REPORT_DIR_ENV)
    if override:
        return Path(override).expanduser()
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home).expanduser() / "reports"


def fetch_metrics(cherry: CherryHook, window: ReportWindow) -> tuple[dict | None, SourceState]:
    """Cherry's figures for one window, or None with the reason when the endpoint fails or answers nonsense."""
    try:
        return parse_metrics(cherry.get_metrics(window.start, window.end)), SourceState(True)
    except errors.ApiError as exc:
        log.warning("Cherry reporting metrics unavailable for %s..%s: %s", window.start, window.end, exc.reason_code)
        return None, SourceState(False, exc.reason_code)
    except MalformedMetrics as exc:
        log.warning("Cherry reporting metrics for %s..%s unusable: %s", window.start, window.end, exc)
        return None, SourceState(False, exc.reason_code)


def compute_report(
    practice: PracticeConfig,
    store: SyncStore,
    cherry: CherryHook,
    window: ReportWindow,
    *,
    now: datetime | None = None,
) -> PracticeReport:
    """Fetch Cherry's figures for the window and the one before, read the store, and join them."""
    now = now or datetime.now(UTC)
    slug = practice.slug
    metrics, metrics_state = fetch_metrics(cherry, window)
    previous, previous_state = (None, SourceState(False, ReasonCode.SKIPPED))
    if metrics is not None:
        previous, previous_state = fetch_metrics(cherry, window.previous())
    synced_at = store.practice_data_synced_at(slug)
    if synced_at is None:
        log.warning("practice %s: not synced yet; payment and patient figures are unavailable", slug)
        payment_rows = patient_rows = None
        store_state = SourceState(False, ReasonCode.NOT_SYNCED)
    else:
        since, _ = window.previous().utc_bounds()
        payment_rows = store.report_payment_rows(slug, changed_since=since)
        patient_rows = store.report_patient_rows(slug)
        store_state = SourceState(True, as_of=synced_at)
        log.info(
            "practice %s: %d payments and %d patients read from the store", slug, len(payment_rows), len(patient_rows)
        )
    return build_report(
        slug=slug,
        display_name=practice.display_name,
        window=window,
        balance_threshold=practice.options.segments.balance_threshold,
        metrics=metrics,
        previous_metrics=previous,
        metrics_state=metrics_state,
        previous_metrics_state=previous_state,
        payment_rows=payment_rows,
        patient_rows=patient_rows,
        store_state=store_state,
        generated_at=now,
    )


def report_key(slug: str, window: ReportWindow) -> str:
    return f"{slug}/{window.start.isoformat()}/{window.end.isoformat()}"


def run_practice_report(
    practice: PracticeConfig,
    store: SyncStore,
    cherry: CherryHook,
    window: ReportWindow,
    *,
    send: bool,
    force: bool = False,
    run_id: str = "manual",
    sender: str | None = None,
    deliver: Callable[[EmailMessage], int] | None = None,
    output_dir: Path | None = None,
    now: datetime | None = None,
) -> ReportOutcome:
    """Render (and, with `send`, deliver once) one practice's report for `window`.

    `sender` is the From address and `deliver(message) -> accepted recipients` the transport (both required
    when `send`). Rendered files go to `output_dir` (default `report_dir()`).
    """
    slug = practice.slug
    recipients = list(practice.options.report_recipients)
    outcome = ReportOutcome(slug, RENDERED, window.start.isoformat(), window.end.isoformat(), len(recipients))
    if send and not recipients:
        outcome.outcome = NO_RECIPIENTS
        return outcome
    if send and not force:
        existing = store.get_report_send(slug, window.start, window.end)
        if existing is not None and existing.status == "sent":
            log.info("practice %s: report for %s..%s already sent; nothing to do", slug, window.start, window.end)
            outcome.outcome = ALREADY_SENT
            return outcome
        if existing is not None and existing.status == "sending":
            raise SendInterrupted(slug, window, existing.claimed_at)
    if send and (sender is None or deliver is None):
        raise ValueError("sending needs a sender address and a transport")

    now = now or datetime.now(UTC)
    report = compute_report(practice, store, cherry, window, now=now)
    outcome.metrics_available = report.metrics.available
    outcome.store_available = report.store.available
    outcome.api_calls = {f"cherry {op}": n for op, n in cherry.calls.items()}
    rendered = render_report(report, recipients_count=len(recipients))
    folder = output_dir or report_dir()
    paths = write_files(rendered, folder, f"{slug}_{window.end.isoformat()}")
    outcome.files = [str(path) for path in paths]
    log.info("practice %s: report for %s..%s rendered to %s", slug, window.start, window.end, folder)
    if not send:
        return outcome

    message = build_message(
        rendered, sender=sender, recipients=recipients, report_key=report_key(slug, window), sent_at=now
    )
    claim = store.claim_report_send(
        slug, window.start, window.end, run_id=run_id, recipients_count=len(recipients), force=force
    )
    if not claim.claimed:
        # Another run got there between our check and our claim.
        if claim.row.status == "sent":
            outcome.outcome = ALREADY_SENT
            return outcome
        raise SendInterrupted(slug, window, claim.row.claimed_at)
    try:
        outcome.accepted = deliver(message)
    except Exception as exc:
        # The server did not accept it (or it never reached one): a later attempt may claim and send again.
        # Anything harsher (the worker killed mid-send) leaves the claim in `sending`: delivery unknown.
        error = exc.error if isinstance(exc, SmtpSendError) else type(exc).__name__
        store.mark_report_failed(slug, window.start, window.end, error=error)
        raise
    store.mark_report_sent(
        slug, window.start, window.end, message_id=str(message["Message-ID"]), figures=report.figures_json()
    )
    outcome.outcome = SENT
    log.info(
        "practice %s: report for %s..%s sent to %d of %d recipient(s)",
        slug,
        window.start,
        window.end,
        outcome.accepted,
        len(recipients),
    )
    return outcome
