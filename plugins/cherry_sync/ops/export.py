"""A run's per-record outcomes as CSV, streamed from the store a batch at a time (a run can touch 100k records)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

COLUMNS = (
    "recorded_at",
    "dag_id",
    "run_id",
    "task_id",
    "practice_slug",
    "entity",
    "source_id",
    "crm_id",
    "operation",
    "result",
    "reason_code",
    "trace_id",
    "payload_hash",
)
ROWS_PER_CHUNK = 500
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    # A spreadsheet would run a cell starting like a formula; ids never need to, so it is quoted as text.
    return "'" + text if text.startswith(_FORMULA_START) else text


def outcomes_csv(outcomes: Iterable[Any]) -> Iterator[str]:
    """The header, then the outcomes, in chunks of `ROWS_PER_CHUNK` lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for rows, outcome in enumerate(outcomes, start=1):
        writer.writerow([_cell(getattr(outcome, name)) for name in COLUMNS])
        if rows % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
