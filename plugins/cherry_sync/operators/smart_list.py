"""`SmartListOperator`: keep one practice's "Cherry Patients" smart list exact.

Like the other per-practice operators it resolves the practice when it runs (a disabled or invalid practice is
skipped and nothing is touched), records its work in the run ledger and maps failures onto Airflow (see
`PracticeOperator`). The work itself is `cherry_sync.smart_list.run.update_smart_list`; its summary (counts per
segment, tags added and removed, verification, export file name; no patient data) goes to the ledger's details and
to XCom.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cherry_sync.operators.practice import PracticeOperator

if TYPE_CHECKING:
    from cherry_sync.context import PracticeContext
    from cherry_sync.smart_list.run import SmartListSummary

# The engine (store, hooks, SQLAlchemy) is imported inside run_for_practice(): DAG files import this module at
# parse time and must stay fast.

log = logging.getLogger(__name__)


class SmartListOperator(PracticeOperator):
    """Compute the practice's segments from the sync store and push only the tag changes to the CRM."""

    template_fields: Sequence[str] = (*PracticeOperator.template_fields, "verify", "verify_every_hours")
    ui_color = "#e3d9f7"

    def __init__(self, *, verify: str = "auto", verify_every_hours: float = 24, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verify = verify
        self.verify_every_hours = verify_every_hours

    def run_for_practice(self, ctx: PracticeContext, dry_run: bool, arguments: Mapping[str, Any]) -> SmartListSummary:
        from cherry_sync.smart_list.run import update_smart_list

        return update_smart_list(ctx, dry_run=dry_run, verify=self.verify, verify_every_hours=self.verify_every_hours)
