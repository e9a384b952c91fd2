"""Webhook test harness: a receiver on a free loopback port over a real store, for practices of a real registry.

`receiver_factory(store, practices, secrets)` writes a registry file naming the practices (webhooks on), puts each
practice's Cherry connection (`webhook_secret` extra) in the environment as Airflow reads it, and serves the
receiver app on loopback. The Cherry sandbox then delivers to `receiver.url(slug)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import yaml

from cherry_sync.store import SyncStore
from cherry_sync.webhooks.receiver import RegistryEndpoints, create_app
from sandbox.common.server import RunningServer, start_in_thread


@dataclass
class Receiver:
    server: RunningServer
    store: SyncStore

    def url(self, slug: str) -> str:
        return f"{self.server.base_url}/{slug}"

    def stop(self) -> None:
        self.server.stop()


def registry_entry(slug: str, webhooks: bool = True, **events) -> dict:
    return {
        "slug": slug,
        "display_name": slug.title(),
        "timezone": "America/New_York",
        "timezone_pinned": True,
        "cherry_conn_id": f"cherry_{slug.replace('-', '_')}",
        "crm_conn_id": f"crm_{slug.replace('-', '_')}",
        "events": {"webhooks": webhooks, **events},
    }


@pytest.fixture
def receiver_factory(tmp_path, monkeypatch) -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(
        store: SyncStore, secrets: dict[str, str], *, cherry_url: str = "http://127.0.0.1:9", entries=None
    ) -> Receiver:
        entries = entries or [registry_entry(slug) for slug in secrets]
        path = tmp_path / "practices.yml"
        path.write_text(yaml.safe_dump(entries))
        monkeypatch.setenv("CHERRY_SYNC_REGISTRY", str(path))
        for entry in entries:
            extra = {"webhook_secret": secrets[entry["slug"]]} if secrets.get(entry["slug"]) else {}
            conn = {"conn_type": "http", "host": cherry_url, "password": "key", "extra": extra}
            monkeypatch.setenv(f"AIRFLOW_CONN_{entry['cherry_conn_id'].upper()}", json.dumps(conn))
        app = create_app(endpoints=RegistryEndpoints(ttl=0), store=lambda: store)
        receiver = Receiver(start_in_thread(app), store)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()
