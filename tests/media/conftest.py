"""Media import test harness: real Cherry and CRM sandboxes, a real store, and importers over them.

`MediaEnv` is the shared `SandboxEnv` (tests/fixtures/sandbox_env.py) with the media import's limits and helpers.
`media_env` (on each store backend, through the `store` fixture) is one Cherry practice (the sandbox's library of
120 assets in 5 categories) and one CRM location. Time is scaled so tests stay fast: the Cherry sandbox allows
200 requests per 1 s per key and the hook paces at 190 (Cherry: 20/s); the CRM sandbox allows 100 per 0.25 s per
location and the hook paces at 95 per 0.25 s (HighLevel: 100 per 10 s). Retries back off from 10 ms and a read
times out after 1 s, so `hang` faults of 1.5 s or more outlast it.

Uploads go through a `WriteWindow`; on loopback it keeps about 2 in flight. `use_window(env, n)` (from
tests/fixtures/sandbox_env.py) pins it: 1 (one
upload at a time, as before the window), or `n` in flight with 50 ms of CRM latency on every request, so the
uploads really overlap (`env.set_faults` keeps that latency under the faults a test adds).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cherry_sync.hooks.base import RetrySettings
from cherry_sync.hooks.cherry import CherryHook
from cherry_sync.hooks.crm import AesthetixCrmHook
from cherry_sync.media.importer import ImportSettings, MediaImporter, MediaSummary
from cherry_sync.media.sources import CherryAssetSource, FolderAssetSource
from cherry_sync.store import SyncStore
from tests.fixtures.sandbox_env import SandboxEnv, SandboxEnvs

SLUG = "glow-aesthetics"
CHERRY_LIMITS = {"burst_limit": 200, "burst_window_seconds": 1.0}
CRM_LIMITS = {"burst_limit": 100, "burst_window_seconds": 0.25}


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
class MediaEnv(SandboxEnv):
    """One Cherry practice (`SLUG`) synced into one CRM location, with the test's store."""

    cherry_settings: ClassVar[dict[str, Any]] = {
        "seed": 5,
        "practices": 1,
        "patients_per_practice": 3,
        "rate_limits": CHERRY_LIMITS,
    }
    crm_settings: ClassVar[dict[str, Any] | None] = {"rate_limits": CRM_LIMITS}

    cherry_extra: dict[str, Any] = field(default_factory=lambda: {**CHERRY_LIMITS, "burst_limit": 190})
    crm_extra: dict[str, Any] = field(default_factory=lambda: {"burst_limit": 95, "burst_window_seconds": 0.25})

    def slug(self, index: int = 0) -> str:
        return SLUG

    def hooks(self, retry: RetrySettings | None = None) -> tuple[CherryHook, AesthetixCrmHook]:
        """Fresh hooks (call counters at zero)."""
        return self.cherry_hook(retry=retry), self.crm_hook(retry=retry)

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
        return self.crm.location_state(self.location_id())["media"]

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
def media_env_factory(store: SyncStore, sandbox_envs: SandboxEnvs) -> Callable[..., MediaEnv]:
    """Environments on the test's store (SQLite and PostgreSQL)."""
    return _factory(sandbox_envs, store)


@pytest.fixture
def sqlite_media_env_factory(sandbox_envs: SandboxEnvs) -> Callable[..., MediaEnv]:
    """Environments on a SQLite store only."""
    return _factory(sandbox_envs, "sqlite")


def _factory(sandbox_envs: SandboxEnvs, store: SyncStore | str) -> Callable[..., MediaEnv]:
    def make(crm: dict[str, Any] | None = None, **cherry: Any) -> MediaEnv:
        """`crm`: CRM sandbox settings (e.g. max_upload_bytes); the rest: the Cherry sandbox's."""
        env = sandbox_envs.build(MediaEnv, store=store, cherry=cherry, crm=crm)
        env.practice(0)  # the store's media rows belong to a registered practice
        return env

    return make


@pytest.fixture
def media_env(media_env_factory) -> MediaEnv:
    """One practice and location on each store backend."""
    return media_env_factory()


@pytest.fixture
def sqlite_media_env(sqlite_media_env_factory) -> MediaEnv:
    """One practice and location on a SQLite store."""
    return sqlite_media_env_factory()
