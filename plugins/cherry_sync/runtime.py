"""Build what a task needs for one practice, at run time: registry entry, store, hooks, shared pacer.

The connections are those of `cherry_sync.context`, all resolved when a task runs, never at parse time.
`crm_hook` is the one way a practice's CRM hook is built, for both ways a practice reaches its CRM location (its own
Private Integration Token, or the marketplace app's OAuth tokens). API pacing is shared through `cherry_sync_pacer` when it is defined; without it through the store's PostgreSQL, or for
a SQLite store a file-locked SQLite file next to it.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from cherry_sync.context import PACER_CONN_ID, STORE_CONN_ID, PracticeContext
from cherry_sync.errors import CherrySyncError, Disposition
from cherry_sync.hooks.base import RetrySettings
from cherry_sync.hooks.cherry import CherryHook
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.hooks.oauth import TokenService
from cherry_sync.hooks.pacing import Pacer, pacer_from_url
from cherry_sync.reasons import ReasonCode
from cherry_sync.registry import PracticeConfig, Registry, load_registry
from cherry_sync.store import SyncStore, get_store, url_from_connection

log = logging.getLogger(__name__)


class PracticeUnavailable(CherrySyncError):
    """The practice cannot run: unknown, disabled or invalid in the registry. Its task is skipped."""

    reason_code = ReasonCode.PRACTICE_UNAVAILABLE
    disposition = Disposition.SKIP

    def __init__(self, slug: str, reason: str) -> None:
        self.slug = slug
        self.reason = reason
        super().__init__(f"practice {slug}: {reason}")

    def describe(self) -> str:
        return self.reason

    def __reduce__(self) -> tuple[type[PracticeUnavailable], tuple[object, ...]]:
        return (type(self), (self.slug, self.reason))


def registry() -> Registry:
    reg = load_registry()
    for error in reg.errors:
        log.error("registry: %s: %s: %s", error.practice, error.field, error.message)
    return reg


def practice_config(slug: str, reg: Registry | None = None) -> PracticeConfig:
    reg = reg or registry()
    practice = reg.get(slug)
    if practice is None:
        bad = [e for e in reg.errors if e.practice == slug]
        raise PracticeUnavailable(slug, "invalid registry entry" if bad else "not in the registry")
    if not practice.enabled:
        raise PracticeUnavailable(slug, "disabled in the registry (enabled: false); nothing is synced or deleted")
    return practice


def _conn_url(conn_id: str) -> str | None:
    """The connection as a URL: a SQLAlchemy URL for sqlite/postgres, `redis://...` for a redis pacer."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    if (conn.conn_type or "").lower() == "redis":
        return redis_url(conn)
    return url_from_connection(conn).render_as_string(hide_password=False)


def redis_url(conn) -> str:
    """`redis://[:password@]host:port/db` from an Airflow redis connection (db: the path, or the `db` extra)."""
    from urllib.parse import quote

    db = conn.schema or (conn.extra_dejson or {}).get("db") or 0
    auth = f":{quote(conn.password, safe='')}@" if conn.password else ""
    return f"redis://{auth}{conn.host or '127.0.0.1'}:{conn.port or 6379}/{db}"


@lru_cache(maxsize=4)
def _pacer_for(url: str | None) -> Pacer:
    return pacer_from_url(url)


def shared_pacer() -> Pacer:
    """Pacing shared by every task that touches the same API key or location."""
    explicit = os.environ.get("CHERRY_SYNC_PACER_URL") or _conn_url(PACER_CONN_ID)
    if explicit:
        return _pacer_for(explicit)
    store_url = _conn_url(STORE_CONN_ID) or ""
    if store_url.startswith("sqlite:///"):
        store_path = Path(store_url.removeprefix("sqlite:///"))
        return _pacer_for(f"sqlite:///{store_path.with_name(store_path.stem + '-pacing.db')}")
    if store_url.startswith("postgresql"):
        return _pacer_for(store_url)
    return _pacer_for(None)


def crm_hook(
    practice: PracticeConfig,
    pacer: Pacer | None = None,
    *,
    store: SyncStore | None = None,
    tokens: TokenService | None = None,
    retry: RetrySettings | None = None,
    connection: Any | None = None,
) -> AesthetixCrmHook:
    """The practice's CRM hook. `crm_auth: pit`: its own connection (`crm_conn_id`). `crm_auth: oauth`: the
    marketplace app's connection for `crm_location_id`, its bearer token from `tokens` (default: a `TokenService`
    on the app and token key connections over `store`, default the sync store's connection).

    `connection` stands in for the Airflow connection (tests; in oauth mode default `tokens`' app connection).
    """
    if practice.crm_auth == "oauth":
        assert practice.crm_location_id is not None  # the registry requires it
        if tokens is None:
            tokens = TokenService.from_connections(store or get_store(STORE_CONN_ID), pacer=pacer)
        return AesthetixCrmHook(
            practice.crm_connection_id,
            location_id=practice.crm_location_id,
            connection=connection or tokens.app.connection,
            credentials=tokens.credentials(practice.crm_location_id),
            pacer=pacer,
            retry=retry,
        )
    return AesthetixCrmHook(practice.crm_connection_id, connection=connection, pacer=pacer, retry=retry)


def practice_context(
    practice: PracticeConfig, store: SyncStore | None = None, pacer: Pacer | None = None
) -> PracticeContext:
    """The practice's context: its registry entry, the store and both hooks, paced through the shared pacer
    (`pacer`: one already resolved, so a task running several practices looks its connection up once)."""
    pacer = pacer or shared_pacer()
    store = store or get_store(STORE_CONN_ID)
    return PracticeContext(
        practice=practice,
        store=store,
        cherry=CherryHook(practice.cherry_conn_id, pacer=pacer),
        crm=crm_hook(practice, pacer, store=store),
    )
