"""`SyncStore`: the product's own database, as one object the pipelines hold."""

from __future__ import annotations

from cherry_sync.store.alerts import AlertQueries
from cherry_sync.store.checkpoints import CheckpointQueries
from cherry_sync.store.ledger import LedgerQueries
from cherry_sync.store.media_library import MediaQueries
from cherry_sync.store.oauth_tokens import OAuthTokenQueries
from cherry_sync.store.outcomes import OutcomeQueries
from cherry_sync.store.patients import PatientQueries
from cherry_sync.store.payments import PaymentQueries
from cherry_sync.store.practices import PracticeQueries
from cherry_sync.store.progress import ProgressQueries
from cherry_sync.store.rejections import RejectionQueries
from cherry_sync.store.reports import ReportQueries
from cherry_sync.store.smart_lists import SmartListQueries
from cherry_sync.store.webhooks import InboxQueries


class SyncStore(
    PracticeQueries,
    PatientQueries,
    PaymentQueries,
    ProgressQueries,
    CheckpointQueries,
    RejectionQueries,
    LedgerQueries,
    SmartListQueries,
    MediaQueries,
    ReportQueries,
    InboxQueries,
    OAuthTokenQueries,
    OutcomeQueries,
    AlertQueries,
):
    """The sync store (never Airflow's metadata database), on SQLite or PostgreSQL.

    Each subject's queries live in their own module (practices, patients, payments, progress, checkpoints,
    rejections, ledger, OAuth tokens, record outcomes); this class only puts them behind one engine. Every method runs in its own transaction,
    is idempotent and takes batches. Build it with `cherry_sync.store.get_store()` in a task, or
    `SyncStore(engine)` on an engine already migrated with `migrate(engine)`.
    """
