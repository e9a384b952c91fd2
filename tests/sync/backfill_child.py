"""Run one practice's backfill in a child process (the crash test kills it with SIGKILL mid-way).

    python -m tests.sync.backfill_child '<json spec>'

The spec names the sandboxes (URLs, key, location, token), the store URL, the practice and the page size.
The child prints its summary as JSON when it finishes (it normally does not get that far).
"""

from __future__ import annotations

import json
import sys

from airflow.sdk import Connection

from cherry_sync.hooks.base import RetrySettings
from cherry_sync.hooks.cherry import CherryHook
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.hooks.pacing import MemoryPacer
from cherry_sync.registry import PracticeConfig
from cherry_sync.store import SyncStore, engine_from_url
from cherry_sync.sync.practice_runs import PracticeContext, backfill_practice


def main(spec: dict) -> dict:
    practice = PracticeConfig.model_validate(spec["practice"])
    pacer = MemoryPacer()
    retry = RetrySettings(backoff_initial=0.01, backoff_max=0.1, read_timeout=2.0)
    cherry = CherryHook(
        practice.cherry_conn_id,
        connection=Connection(conn_id="c", conn_type="http", host=spec["cherry_url"], password=spec["cherry_key"]),
        pacer=pacer,
        retry=retry,
    )
    crm = AesthetixCrmHook(
        practice.crm_conn_id,
        connection=Connection(
            conn_id="k",
            conn_type="http",
            host=spec["crm_url"],
            password=spec["crm_token"],
            extra=json.dumps({"location_id": spec["location_id"], "burst_window_seconds": 1}),
        ),
        pacer=pacer,
        retry=retry,
    )
    store = SyncStore(engine_from_url(spec["store_url"]))
    ctx = PracticeContext(practice=practice, store=store, cherry=cherry, crm=crm)
    return backfill_practice(ctx, scope=spec.get("scope", "active"), page_size=spec["page_size"]).as_dict()


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
