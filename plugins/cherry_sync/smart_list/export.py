"""The engineers' CSV of a practice's current smart list: opaque ids and one boolean column per segment.

No names, e-mails, phones, birth dates or balances: patient_id, contact_id and the segment flags only. Written
atomically (a temporary file in the same folder, fsynced, then renamed over the old one), so a reader never sees
half a file. Folder: `$CHERRY_SYNC_EXPORT_DIR`, else `$AIRFLOW_HOME/exports` (Airflow's default home: ~/airflow).
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cherry_sync.smart_list.segments import SEGMENTS, SegmentPlan
from cherry_sync.store import SyncStore

EXPORT_DIR_ENV = "CHERRY_SYNC_EXPORT_DIR"
HEADER = ("patient_id", "contact_id", *SEGMENTS)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int


def export_dir() -> Path:
    """Where exports go: `$CHERRY_SYNC_EXPORT_DIR`, else `$AIRFLOW_HOME/exports` (default home ~/airflow)."""
    configured = os.environ.get(EXPORT_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser() / "exports"


def export_path(slug: str, directory: Path | None = None) -> Path:
    return (directory or export_dir()) / f"smart_list_{slug}.csv"


def write_export(store: SyncStore, slug: str, plan: SegmentPlan, directory: Path | None = None) -> ExportResult:
    """Write `smart_list_<slug>.csv` with every member (patient id order) and its segment flags."""
    target = export_path(slug, directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    members = store.smart_list_members(slug, plan.threshold)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            for member in members:
                flags = ("true" if name in member.segments else "false" for name in SEGMENTS)
                writer.writerow((member.patient_id, member.contact_id, *flags))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return ExportResult(target, len(members))
