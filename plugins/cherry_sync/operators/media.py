"""`MediaImportOperator`: one practice's Cherry marketing assets into its CRM media library.

A `PracticeOperator`: the practice is resolved at run time (disabled or unknown: skipped), the work is wrapped in
a run-ledger row, and failures are mapped onto Airflow by the base. The ledger's counters mean: read = assets
listed, created = assets uploaded for the first time, updated = new versions of changed assets, unchanged =
content already in the CRM, rejected = assets refused with a reason. An asset folder that cannot be read fails
the task at once (`asset_folder_unavailable`: a person must fix the URI or its connection); nothing has been
written by then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cherry_sync.operators.practice import PracticeOperator

if TYPE_CHECKING:
    from cherry_sync.context import PracticeContext
    from cherry_sync.media.importer import MediaSummary
    from cherry_sync.store import RunCounts

# As in operators/practice.py: the engine (hooks, store, fsspec) is imported inside execute(), never at parse time.


@dataclass(frozen=True)
class MediaImportReport:
    """An import's summary as the ledger counts it (see the module docstring for what each counter means)."""

    summary: MediaSummary

    def as_dict(self) -> dict[str, Any]:
        return self.summary.as_dict()

    def ledger_counts(self) -> RunCounts:
        from cherry_sync.store import RunCounts

        s = self.summary
        return RunCounts(
            read=sum(s.listed.values()),
            created=s.uploaded,
            updated=s.new_versions,
            unchanged=s.unchanged,
            rejected=s.rejected,
        )


class MediaImportOperator(PracticeOperator):
    """Upload the practice's new or changed marketing assets into `Cherry/<category>` (idempotent, resumable).

    `asset_folder`: an object-storage URI (the DAG's param, rendered as is); empty or None: Cherry's assets only.
    """

    template_fields: Sequence[str] = (*PracticeOperator.template_fields, "asset_folder")
    ui_color = "#fbe3c8"

    def __init__(self, *, asset_folder: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asset_folder = asset_folder

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool, arguments: Mapping[str, Any]) -> MediaImportReport:
        from cherry_sync.media.importer import import_practice

        folder = (self.asset_folder or "").strip() or None
        return MediaImportReport(import_practice(ctx, asset_folder=folder, dry_run=dry_run))
