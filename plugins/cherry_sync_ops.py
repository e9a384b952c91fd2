"""Airflow plugin: the api-server serves the Cherry Sync operations pages under `/cherry-sync`, and the UI's
navigation links to them ("Cherry Sync", shown inside the UI through an external view with a `url_route`).

The pages (cherry_sync.ops) are read-only and follow Airflow's auth manager: only a user who may read the runs of
the Cherry Sync DAGs sees them; docs/operations.md.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cherry_sync.ops import MOUNT, create_app


class CherrySyncOpsPlugin(AirflowPlugin):
    """Mounts the operations app and adds it to the UI's navigation."""

    name = "cherry_sync_ops"
    fastapi_apps = [{"app": create_app(), "url_prefix": MOUNT, "name": "Cherry Sync operations"}]
    # With a `url_route` the UI frames `href` in its own page at /plugin/cherry-sync and mirrors the frame's path
    # into the address bar (deep links work); `nav_top_level` puts the button in the main navigation.
    external_views = [
        {
            "name": "Cherry Sync",
            "href": f"{MOUNT}/",
            "destination": "nav",
            "url_route": "cherry-sync",
            "nav_top_level": True,
        }
    ]
