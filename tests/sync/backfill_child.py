"""Run one practice's backfill in a child process (the crash test kills it with SIGKILL mid-way).

    python -m tests.sync.backfill_child '<json spec>'

The spec names the sandboxes (URLs, key, location, token), the store URL, the practice and the page size.
The child prints its summary as JSON when it finishes (it normally does not get that far).
"""

from __future__ import annotations

import json
import sys

from cherry_sync.context import PracticeContext
from cherry_sync.hooks.base import RetrySettings
from cherry_sync.hooks.pacing import MemoryPacer
from cherry_sync.registry import PracticeConfig
from cherry_sync.store import SyncStore, engine_from_url
from cherry_sync.sync.practice_runs import backfill_practice
from tests.fixtures.hooks import cherry_hook, crm_hook


def main(spec: dict) -> dict:
    practice = PracticeConfig.model_validate(spec["practice"])
    pacer = MemoryPacer()
    retry = RetrySettings(backoff_initial=0.01, backoff_max=0.1, read_timeout=2.0)
    cherry = cherry_hook(
        spec["cherry_url"], conn_id=practice.cherry_conn_id, api_key=spec["cherry_key"], retry=retry, pacer=pacer
    )
    crm = crm_hook(
        spec["crm_url"],
        conn_id=practice.crm_conn_id,
        token=spec["crm_token"],
        location_id=spec["location_id"],
        retry=retry,
        pacer=pacer,
        burst_window_seconds=1,
    )
    store = SyncStore(engine_from_url(spec["store_url"]))
    ctx = PracticeContext(practice=practice, store=store, cherry=cherry, crm=crm)
    return backfill_practice(ctx, scope=spec.get("scope", "active"), page_size=spec["page_size"]).as_dict()


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
