"""The sync store: the product's own database (practices mirror, Cherry snapshots, progress, rejections, ledger).

Tasks call `get_store()`; tests and tools build engines with `engine_from_url` and run `migrate`.
"""

from cherry_sync.store.engine import (
    engine_from_connection,
    engine_from_url,
    get_store,
    store_from_engine,
    url_from_connection,
)
from cherry_sync.store.migrate import migrate
from cherry_sync.store.models import (
    AlertState,
    AlertTransition,
    Checkpoint,
    LedgerEntry,
    OutcomeOperation,
    OutcomeResult,
    PatientSnapshot,
    PatientState,
    PaymentSnapshot,
    PaymentState,
    PracticeRecord,
    PracticeSyncResult,
    RecordOutcome,
    Rejection,
    RejectionRecord,
    RunCounts,
)
from cherry_sync.store.sync_store import SyncStore

__all__ = [
    "AlertState",
    "AlertTransition",
    "Checkpoint",
    "LedgerEntry",
    "OutcomeOperation",
    "OutcomeResult",
    "PatientSnapshot",
    "PatientState",
    "PaymentSnapshot",
    "PaymentState",
    "PracticeRecord",
    "PracticeSyncResult",
    "RecordOutcome",
    "Rejection",
    "RejectionRecord",
    "RunCounts",
    "SyncStore",
    "engine_from_connection",
    "engine_from_url",
    "get_store",
    "migrate",
    "store_from_engine",
    "url_from_connection",
]
