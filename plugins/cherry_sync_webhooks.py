"""Airflow plugin: the api-server serves Cherry's webhook receiver under `/cherry-webhooks/<practice_slug>`.

The app (cherry_sync.webhooks.receiver) checks each delivery's signature with the practice's secret from its
Cherry connection and stores it in the sync store's inbox before answering; docs/webhooks.md.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cherry_sync.webhooks.receiver import create_app


class CherryWebhooksPlugin(AirflowPlugin):
    """Mounts the webhook receiver on the api-server."""

    name = "cherry_sync_webhooks"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/cherry-webhooks", "name": "Cherry webhook receiver"}]
