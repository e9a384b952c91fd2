"""A spawned worker for the cross-process OAuth tests: one CRM hook on OAuth, built by `runtime.crm_hook`, doing
writes from a common start time. Separate OS processes, so only the store (row locks) and the pacer coordinate
them; each reports its outcomes (counts and reason codes only).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any


def write_contacts(job: dict[str, Any]) -> dict[str, Any]:
    from airflow.sdk import Connection

    from cherry_sync.errors import CherrySyncError
    from cherry_sync.hooks.base import RetrySettings
    from cherry_sync.hooks.oauth import TokenService
    from cherry_sync.hooks.pacing import pacer_from_url
    from cherry_sync.registry import PracticeConfig
    from cherry_sync.runtime import crm_hook
    from cherry_sync.store import SyncStore, engine_from_url

    store = SyncStore(engine_from_url(job["store_url"]))
    pacer = pacer_from_url(job["pacer_url"])
    retry = RetrySettings(**job["retry"])
    tokens = TokenService.from_connections(
        store,
        pacer=pacer,
        retry=retry,
        app_connection=Connection(**job["connections"]["app"]),
        key_connection=Connection(**job["connections"]["key"]),
    )
    practice = PracticeConfig.model_validate(
        {
            "slug": f"practice-{job['worker']}",
            "display_name": "Worker",
            "timezone": "America/New_York",
            "cherry_conn_id": "cherry_unused",
            "crm_auth": "oauth",
            "crm_location_id": job["location_id"],
        }
    )
    hook = crm_hook(practice, pacer, tokens=tokens, retry=retry)
    outcomes: Counter[str] = Counter()
    try:
        time.sleep(max(0.0, job["start_at"] - time.time()))
        for n in range(job["writes"]):
            email = f"w{job['worker']}-{n}@oauth-race.example"
            try:
                hook.upsert_contact({"email": email, "firstName": "Race"})
                outcomes["ok"] += 1
            except CherrySyncError as exc:
                outcomes[str(exc.reason_code)] += 1
    finally:
        pacer.close()
    return {"outcomes": dict(outcomes), "calls": hook.api_calls}
