"""The "Cherry Patients" smart list (issue 5): segment tags on CRM contacts, kept exact and current.

Plain Python over the store and the CRM hook, testable without Airflow:
- `segments`: the segments, their tags per practice, and the membership rule;
- the store (`SyncStore.smart_list_changes`) computes membership and the diff in SQL;
- `push`: bulk tag additions and removals, falling back to one call per contact for a batch the CRM refuses;
- `verify`: the CRM's Account Status / Active Balance columns and the product's tags against the store;
- `export`: the engineers' CSV (opaque ids and segment flags);
- `run.update_smart_list`: one practice, end to end.
"""

from cherry_sync.smart_list.run import update_smart_list
from cherry_sync.smart_list.segments import SegmentPlan, segments_of

__all__ = ["SegmentPlan", "segments_of", "update_smart_list"]
