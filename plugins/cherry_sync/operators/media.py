"""`MediaImportOperator`: one practice's Cherry marketing assets into its CRM media library (issue 6).

A `PracticeOperator`: the practice is resolved at run time (disabled or unknown: skipped), the work is wrapped in
a run-ledger row, and failures are sorted as for the sync operators. The ledger's counters mean: read = assets
listed, created = assets uploaded for the first time, updated = new versions of changed assets, unchanged =
content already in the CRM, rejected = assets refused with a reason. An asset folder that cannot be read fails
the task at once (a person must fix the URI or its connection); nothing has been written by then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from cherry_sync.operators.practice import PracticeOperator

if TYPE_CHECKING:
    from cherry_sync.sync.practice_runs import PracticeContext

# As in operators/practice.py: the engine (hooks, store, fsspec) is imported inside execute(), never at parse time.


class MediaImportOperator(PracticeOperator):
    """Upload the practice's new or changed marketing assets into `Cherry/<category>` (idempotent, resumable)."""

    template_fields: Sequence[str] = (*PracticeOperator.template_fields, "asset_folder")
    ui_color = "#fbe3c8"

    def __init__(self, *, asset_folder: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asset_folder = asset_folder

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool) -> dict[str, Any]:
        from cherry_sync.media.errors import AssetFolderError
        from cherry_sync.media.importer import import_practice

        folder = str(self.asset_folder or "").strip() or None
        try:
            summary = import_practice(ctx, asset_folder=folder, dry_run=dry_run)
        except AssetFolderError as exc:
            raise AirflowFailException(f"practice {ctx.slug}: {exc}. Check the asset_folder setting.") from None
        return summary.as_dict()

    @staticmethod
    def _finish(ctx: PracticeContext, ledger_id: int, status: str, counts, details: dict) -> None:
        # The base reads a sync's "patients" counters; an import reports assets.
        assets = details.get("assets") if isinstance(details, dict) else None
        if status == "success" and isinstance(assets, dict):
            from cherry_sync.store import RunCounts

            counts = RunCounts(
                read=assets.get("listed", 0),
                created=assets.get("uploaded", 0),
                updated=assets.get("new_versions", 0),
                unchanged=assets.get("unchanged", 0),
                rejected=assets.get("rejected", 0),
                api_calls=sum(details.get("api_calls", {}).values()),
            )
        PracticeOperator._finish(ctx, ledger_id, status, counts, details)
