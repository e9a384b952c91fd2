"""The Cherry Sync operations pages in Airflow's UI: practices overview, practice page, record look-up, run CSV.

`create_app()` builds the read-only FastAPI app the plugin (`plugins/cherry_sync_ops.py`) mounts on the api-server
under `/cherry-sync`; docs/operations.md.
"""

from cherry_sync.ops.app import MOUNT, create_app

__all__ = ["MOUNT", "create_app"]
