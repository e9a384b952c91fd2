"""Media import test harness: real Cherry and CRM sandboxes, a real store, and importers over them.

`media_env` (on each store backend, through the `store` fixture) is one Cherry practice (the sandbox's library of
120 assets in 5 categories) and one CRM location. Time is scaled so tests stay fast: the Cherry sandbox allows
200 requests per 1 s per key and the hook paces at 190 (Cherry: 20/s); the CRM sandbox allows 100 per 0.25 s per
location and the hook paces at 95 per 0.25 s (HighLevel: 100 per 10 s). Retries back off from 10 ms and a read
times out after 1 s, so `hang` faults of 1.5 s or more outlast it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Connection

from cherry_sync.hooks.base import RetrySettings
from cherry_sync.hooks.cherry import CherryHook
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.hooks.pacing import MemoryPacer
from cherry_sync.media.importer import ImportSettings, MediaImporter, MediaSummary
from cherry_sync.media.sources import CherryAssetSource, FolderAssetSource
from cherry_sync.registry import PracticeConfig
from cherry_sync.store import SyncStore, engine_from_url, migrate
from cherry_sync.store.engine import dispose_engine
from sandbox.cherry.testing import CherrySandbox
from sandbox.crm.testing import CrmSandbox, start_crm_sandbox

SLUG = "glow-aesthetics"
RETRY = RetrySettings(backoff_initial=0.01, backoff_max=0.1, read_timeout=1.0, max_elapsed_seconds=60.0)
CHERRY_LIMITS = {"burst_limit": 200, "burst_window_seconds": 1.0}
CRM_LIMITS = {"burst_limit": 100, "burst_window_seconds": 0.25}
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def png_bytes(size: int, seed: int = 0) -> bytes:
    """A valid PNG of about `size` bytes (random pixels do not compress), different per seed."""
    side = max(8, int((size / 3) ** 0.5))
    rng = hashlib.sha256(f"{seed}".encode()).digest()
    raw = bytearray()
    row_bytes = side * 3
    block = b""
    counter = 0
    for _ in range(side):
        raw.append(0)
        while len(block) < row_bytes:
            block += hashlib.sha256(rng + counter.to_bytes(8, "big")).digest()
            counter += 1
        raw.extend(block[:row_bytes])
        block = block[row_bytes:]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw), 1))
        + chunk(b"IEND", b"")
    )


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclass
class MediaEnv:
    """One Cherry practice synced into one CRM location, with the test's store."""

    cherry: CherrySandbox
    crm: CrmSandbox
    store: SyncStore
    pacer: MemoryPacer = field(default_factory=MemoryPacer)
    practice: PracticeConfig | None = None

    @property
    def location_id(self) -> str:
        return self.crm.locations[0].id

    def hooks(self, retry: RetrySettings = RETRY) -> tuple[CherryHook, AesthetixCrmHook]:
        """Fresh hooks (call counters at zero)."""
        info, loc = self.cherry.practices[0], self.crm.locations[0]
        cherry = CherryHook(
            "cherry_test",
            connection=Connection(
                conn_id="cherry_test",
                conn_type="http",
                host=self.cherry.base_url,
                password=info.api_key,
                extra=json.dumps(CHERRY_LIMITS | {"burst_limit": 190}),
            ),
            pacer=self.pacer,
            retry=retry,
        )
        crm = AesthetixCrmHook(
            "crm_test",
            connection=Connection(
                conn_id="crm_test",
                conn_type="http",
                host=self.crm.base_url,
                password=loc.token,
                extra=json.dumps({"location_id": loc.id, "burst_limit": 95, "burst_window_seconds": 0.25}),
            ),
            pacer=self.pacer,
            retry=retry,
        )
        return cherry, crm

    def importer(
        self,
        *,
        folder: str | Path | None = None,
        cherry_source: bool = True,
        dry_run: bool = False,
        settings: ImportSettings | None = None,
        crm: AesthetixCrmHook | None = None,
        **kwargs: Any,
    ) -> MediaImporter:
        cherry, default_crm = self.hooks()
        sources: list = [CherryAssetSource(cherry)] if cherry_source else []
        if folder is not None:
            sources.append(FolderAssetSource(folder if isinstance(folder, str) else Path(folder).as_uri()))
        return MediaImporter(
            slug=SLUG,
            store=self.store,
            crm=crm or default_crm,
            sources=sources,
            settings=settings,
            dry_run=dry_run,
            **kwargs,
        )

    def run(self, **kwargs: Any) -> MediaSummary:
        return self.importer(**kwargs).run()

    # -- sources -------------------------------------------------------------------------------

    def cherry_assets(self) -> list[dict]:
        return self.cherry.fetch_all("/v1/marketing-assets", 0)

    # -- CRM state -----------------------------------------------------------------------------

    def media(self) -> list[dict]:
        return self.crm.location_state(self.location_id)["media"]

    def folders(self) -> list[dict]:
        return [m for m in self.media() if m["type"] == "folder"]

    def files(self) -> list[dict]:
        return [m for m in self.media() if m["type"] == "file"]

    def tree(self) -> dict[str, Counter]:
        """Folder path -> file names (Counter, so a duplicate shows as 2)."""
        folders = {f["id"]: f for f in self.folders()}

        def path(folder_id: str | None) -> str:
            parts = []
            while folder_id:
                folder = folders.get(folder_id)
                if folder is None:  # a deleted folder's files keep its id
                    parts.append("<deleted>")
                    break
                parts.append(folder["name"])
                folder_id = folder.get("parentId")
            return "/".join(reversed(parts))

        out: dict[str, Counter] = {}
        for f in self.files():
            out.setdefault(path(f.get("parentId")), Counter())[f["name"]] += 1
        return out

    def endpoint_counts(self) -> Counter:
        by_key = self.crm.stats()["by_key"].get(self.location_id, {})
        return Counter(by_key.get("endpoints", {}))

    def crm_requests(self) -> int:
        return sum(self.endpoint_counts().values())

    def crm_writes(self) -> Counter:
        return Counter({ep: n for ep, n in self.endpoint_counts().items() if ep.split()[0] in WRITE_METHODS})

    def open_rejections(self) -> dict[str, str]:
        """Open asset rejections: source id -> reason code."""
        return {r.source_id: r.reason_code for r in self.store.open_rejections(SLUG) if r.entity == "asset"}


def add_cherry_asset(env: MediaEnv, category: str, name: str, content: bytes, content_type: str = "image/png") -> dict:
    return env.cherry.admin(
        "POST",
        "/assets",
        json={
            "category": category,
            "name": name,
            "content_type": content_type,
            "content_base64": base64.b64encode(content).decode(),
        },
    )


def assert_no_duplicates(env: MediaEnv) -> None:
    """Every folder name once among its siblings, every file name once in its folder."""
    siblings = Counter((f.get("parentId"), f["name"]) for f in env.folders())
    assert [k for k, n in siblings.items() if n > 1] == [], "duplicate folders"
    duplicates = {path: [n for n, c in names.items() if c > 1] for path, names in env.tree().items()}
    assert {p: d for p, d in duplicates.items() if d} == {}, "duplicate files"


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[SyncStore]:
    """A migrated SQLite store, for the scenarios whose store queries the `store`-based tests already cover on
    both backends (keeps the suite fast)."""
    engine = engine_from_url(sqlite_url)
    migrate(engine)
    yield SyncStore(engine)
    dispose_engine(sqlite_url)


@pytest.fixture
def media_env_factory(store: SyncStore) -> Iterator[Callable[..., MediaEnv]]:
    """Environments on the test's store (SQLite and PostgreSQL)."""
    yield from _factory(store)


@pytest.fixture
def sqlite_media_env_factory(sqlite_store: SyncStore) -> Iterator[Callable[..., MediaEnv]]:
    """Environments on a SQLite store only."""
    yield from _factory(sqlite_store)


def _factory(store: SyncStore) -> Iterator[Callable[..., MediaEnv]]:
    made: list[MediaEnv] = []

    def make(**cherry: Any) -> MediaEnv:
        cherry_sandbox = CherrySandbox.start(
            **{"seed": 5, "practices": 1, "patients_per_practice": 3, "rate_limits": CHERRY_LIMITS, **cherry}
        )
        crm_sandbox = start_crm_sandbox(locations=1, rate_limits=CRM_LIMITS)
        env = MediaEnv(cherry_sandbox, crm_sandbox, store)
        env.practice = PracticeConfig.model_validate(
            {
                "slug": SLUG,
                "display_name": "Glow Aesthetics",
                "timezone": "America/New_York",
                "cherry_conn_id": "cherry_test",
                "crm_conn_id": "crm_test",
            }
        )
        store.sync_practices([env.practice])
        made.append(env)
        return env

    yield make
    for env in made:
        env.cherry.stop(wait=False)
        env.crm.stop(wait=False)
        env.pacer.close()


@pytest.fixture
def media_env(media_env_factory) -> MediaEnv:
    """One practice and location on each store backend."""
    return media_env_factory()


@pytest.fixture
def sqlite_media_env(sqlite_media_env_factory) -> MediaEnv:
    """One practice and location on a SQLite store."""
    return sqlite_media_env_factory()
