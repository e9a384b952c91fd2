"""What every feature shares for one practice's run: `PracticeContext` and the Airflow connection ids.

The sync (backfill, refresh), the smart list, the media import and the monthly email all work on a
`PracticeContext`: the practice's registry entry, the sync store and both API hooks. `runtime.practice_context`
builds one when a task runs; tests and benchmarks build their own. Importing this module costs nothing (no
hook, store or Airflow import), so any module may.

Connections (resolved when a task runs, never at parse time):
- `cherry_sync_store`: the sync store (sqlite or postgres). Default pacing state lives beside it.
- `cherry_sync_pacer` (optional): where API pacing is shared across workers, e.g. `redis://127.0.0.1:6379/0`.
- `cherry_sync_smtp`: the SMTP server of the monthly reports and the operators' failure emails.
- `cherry_sync_highlevel_app`, `cherry_sync_token_key`: the CRM's OAuth app and the tokens' encryption key(s), for
  practices with `crm_auth: oauth`.
- each practice's Cherry connection, and for `crm_auth: pit` its CRM connection, as named in the registry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cherry_sync.hooks.cherry import CherryHook
    from cherry_sync.hooks.crm import AesthetixCrmHook
    from cherry_sync.registry import PracticeConfig
    from cherry_sync.store import SyncStore

STORE_CONN_ID = "cherry_sync_store"
PACER_CONN_ID = "cherry_sync_pacer"
SMTP_CONN_ID = "cherry_sync_smtp"
# OAuth practices (`crm_auth: oauth`): the HighLevel marketplace app (host = CRM base URL, login = client id,
# password = client secret, extras company_id, app_id) serves every such practice's API calls, and the Fernet
# key(s) that encrypt the tokens in the store.
OAUTH_APP_CONN_ID = "cherry_sync_highlevel_app"
TOKEN_KEY_CONN_ID = "cherry_sync_token_key"  # noqa: S105 - a connection id, not a secret

REGISTRY_ENV_VAR = "CHERRY_SYNC_REGISTRY"
# The registry is the deployment's own file, not package data: `include/practices.yml` of the Airflow project
# Airflow runs in (the working directory: the repository for make demo / make airflow / the tests, /opt/airflow in
# the image), wherever the package itself is installed. Kept here, not in `registry`, so a DAG file's form can
# find the file without importing the validating models.
REGISTRY_PATH = Path.cwd() / "include" / "practices.yml"


def default_registry_path() -> Path:
    """`$CHERRY_SYNC_REGISTRY` if set, else include/practices.yml of the Airflow project (the working directory)."""
    override = os.environ.get(REGISTRY_ENV_VAR)
    return Path(override).expanduser() if override else REGISTRY_PATH


@dataclass(frozen=True)
class RunIdentity:
    """Which Airflow run and task the work belongs to (the outcome history's keys)."""

    dag_id: str
    run_id: str
    task_id: str


@dataclass
class PracticeContext:
    """Everything one practice's run needs: its registry entry, the store and both API hooks, and (set by the
    operator) the run it works for; None outside Airflow (tests, benchmarks, the CLI): outcomes are then recorded
    under a `manual__` run id."""

    practice: PracticeConfig
    store: SyncStore
    cherry: CherryHook
    crm: AesthetixCrmHook
    run: RunIdentity | None = None

    @property
    def slug(self) -> str:
        return self.practice.slug

    def api_calls(self) -> dict[str, int]:
        """Attempts per operation so far (retries included), as "cherry GET /v1/..." / "crm POST ..."."""
        return {f"cherry {op}": n for op, n in self.cherry.calls.items()} | {
            f"crm {op}": n for op, n in self.crm.calls.items()
        }

    def crm_calls(self) -> int:
        return self.crm.api_calls
