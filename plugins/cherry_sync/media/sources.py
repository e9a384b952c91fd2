"""Where marketing assets come from: the practice's Cherry account, and optionally a folder of files.

Both sources list `SourceAsset`s and read one asset's bytes with a size cap:
- `CherryAssetSource`: `GET /v1/marketing-assets` (every page) and the streamed `.../content` download. The
  listing carries the sha256 the downloaded bytes must match.
- `FolderAssetSource`: an Airflow `ObjectStoragePath` (file://, s3://, gs://... with `conn_id@` in the URI when the
  store needs credentials). Its first-level folders are the categories; files anywhere below one belong to it.
  Files at the top level are rejected (`no_category`); hidden files (".DS_Store") are ignored. A folder has no
  checksums: a file's sha256 is computed when it is read, and remembered with its size and modification stamp
  (the fingerprint) so an unchanged file is not read again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cherry_sync.hooks import errors as api_errors
from cherry_sync.hooks.cherry import CherryHook
from cherry_sync.media import content_types
from cherry_sync.media.errors import (
    DOWNLOAD,
    LIST,
    AssetFolderError,
    AssetGone,
    AssetRejected,
)
from cherry_sync.reasons import ReasonCode
from cherry_sync.store.media_library import MediaAsset

CHERRY = "cherry"
FOLDER = "folder"
KEY_LIMIT = 128  # rejected_records.source_id and the store's asset_key
READ_CHUNK = 1024 * 1024
FINGERPRINT_KEYS = ("ETag", "etag", "md5Hash", "generation", "mtime", "LastModified", "last_modified", "updated")


def asset_key(source: str, source_id: str) -> str:
    """'cherry:ast_123' or 'folder:Seasonal/spring.png', at most 128 characters (long paths end in a hash)."""
    key = f"{source}:{source_id}"
    if len(key) <= KEY_LIMIT:
        return key
    digest = hashlib.sha256(source_id.encode()).hexdigest()[:16]
    return f"{source}:{source_id[: KEY_LIMIT - len(source) - 18]}~{digest}"


@dataclass(frozen=True)
class SourceAsset:
    """One asset as listed. `sha256` is None for a folder file not read yet (or changed since it was)."""

    source: str
    source_id: str
    category: str
    name: str
    content_type: str
    size: int | None
    sha256: str | None
    updated_at: datetime | None = None
    fingerprint: str | None = None

    @property
    def key(self) -> str:
        return asset_key(self.source, self.source_id)

    @property
    def label(self) -> str:
        """'Seasonal/Spring Refresh - Post.png': how logs and dry runs name it (asset names are not patient data)."""
        return f"{self.category}/{self.name}"


@dataclass
class Listing:
    """A source's complete listing: its assets, and entries that could not be taken at all."""

    source: str
    assets: list[SourceAsset] = field(default_factory=list)
    rejected: list[tuple[str, AssetRejected]] = field(default_factory=list)  # (asset key, why)


def clean_category(value: Any) -> str:
    """A category as a CRM folder name: trimmed, single spaces, no slashes."""
    text = " ".join(str(value or "").replace("/", "-").replace("\\", "-").split())
    return text[:200]


def _read_capped(chunks, max_bytes: int, what: str) -> bytes:
    buf = bytearray()
    for chunk in chunks:
        buf.extend(chunk)
        if len(buf) > max_bytes:
            raise AssetRejected(
                ReasonCode.TOO_LARGE,
                DOWNLOAD,
                f"{what} is over {content_types.megabytes(max_bytes)} (the CRM's upload limit)",
            )
    return bytes(buf)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class CherryAssetSource:
    """The practice's Cherry marketing assets."""

    name = CHERRY

    def __init__(self, cherry: CherryHook, *, page_size: int = 500) -> None:
        self.cherry = cherry
        self.page_size = page_size

    def list_assets(self, known: Mapping[str, MediaAsset] | None = None) -> Listing:
        listing = Listing(CHERRY)
        for page in self.cherry.iter_marketing_asset_pages(limit=self.page_size):
            for item in page.items:
                parsed = self._parse(item)
                if isinstance(parsed, SourceAsset):
                    listing.assets.append(parsed)
                elif parsed is not None:
                    listing.rejected.append(parsed)
        return listing

    @staticmethod
    def _parse(item: Any) -> SourceAsset | tuple[str, AssetRejected] | None:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            return None  # nothing to name it by; the API contract guarantees ids
        asset_id = item["id"]
        sha = item.get("sha256")
        size = item.get("size")
        category = clean_category(item.get("category"))
        name = str(item.get("name") or "").strip()
        missing = [
            label
            for label, ok in (
                ("category", bool(category)),
                ("name", bool(name)),
                ("content_type", isinstance(item.get("content_type"), str)),
                ("sha256", isinstance(sha, str) and len(sha) == 64),
                ("size", isinstance(size, int) and not isinstance(size, bool) and size >= 0),
            )
            if not ok
        ]
        if missing:
            why = AssetRejected(ReasonCode.MALFORMED_ASSET, LIST, f"listing entry without a valid {', '.join(missing)}")
            return asset_key(CHERRY, asset_id), why
        return SourceAsset(
            source=CHERRY,
            source_id=asset_id,
            category=category,
            name=name[:300],
            content_type=content_types.normalise(item["content_type"]),
            size=size,
            sha256=sha.lower(),
            updated_at=_parse_time(item.get("updated_at")),
        )

    def read(self, asset: SourceAsset, max_bytes: int) -> bytes:
        try:
            return self.cherry.download_asset(asset.source_id, max_bytes=max_bytes)
        except api_errors.NotFoundError:
            raise AssetGone(asset.key) from None
        except api_errors.ValidationError as exc:
            if exc.status is None:  # the hook's own cap, not an answer from Cherry
                raise AssetRejected(
                    ReasonCode.TOO_LARGE,
                    DOWNLOAD,
                    f"download is over {content_types.megabytes(max_bytes)} (the CRM's limit)",
                ) from None
            raise AssetRejected(ReasonCode.DOWNLOAD_FAILED, DOWNLOAD, f"Cherry refused the download: {exc}") from None


class FolderAssetSource:
    """Asset files under an ObjectStoragePath: `<root>/<category>/[...]/<file>`."""

    name = FOLDER

    def __init__(self, uri: Any) -> None:
        from airflow.sdk import ObjectStoragePath

        self.uri = str(uri)
        try:
            self.root = uri if isinstance(uri, ObjectStoragePath) else ObjectStoragePath(str(uri).strip())
        except Exception as exc:  # noqa: BLE001 - unknown protocol, bad URI: one clear error
            raise AssetFolderError(f"asset folder {self.uri!r} is not a valid URI ({type(exc).__name__})") from None

    def _files(self) -> dict[str, dict]:
        """Every file below the root with its details (one listing call on object stores)."""
        try:
            if not self.root.is_dir():
                raise AssetFolderError(f"asset folder {self.uri!r} does not exist or is not a folder")
            found = self.root.fs.find(self.root.path, withdirs=False, detail=True)
        except AssetFolderError:
            raise
        except Exception as exc:  # noqa: BLE001 - missing credentials, no access, unreachable store...
            raise AssetFolderError(f"asset folder {self.uri!r} cannot be read ({type(exc).__name__})") from None
        prefix = self.root.path.rstrip("/") + "/"
        out = {}
        for path, info in found.items():
            rel = path[len(prefix) :] if path.startswith(prefix) else None
            if rel and info.get("type", "file") != "directory":
                out[rel] = info
        return out

    def list_assets(self, known: Mapping[str, MediaAsset] | None = None) -> Listing:
        known = known or {}
        listing = Listing(FOLDER)
        for rel, info in sorted(self._files().items()):
            parts = rel.split("/")
            if any(p.startswith(".") for p in parts):
                continue  # .DS_Store, .keep, editors' temporary files
            if len(parts) == 1:
                why = AssetRejected(ReasonCode.NO_CATEGORY, LIST, f"{rel} is not inside a category folder")
                listing.rejected.append((asset_key(FOLDER, rel), why))
                continue
            size = info.get("size")
            size = int(size) if isinstance(size, (int, float)) else None
            fingerprint = self._fingerprint(size, info)
            key = asset_key(FOLDER, rel)
            previous = known.get(key)
            sha = previous.sha256 if previous and fingerprint and previous.fingerprint == fingerprint else None
            listing.assets.append(
                SourceAsset(
                    source=FOLDER,
                    source_id=rel,
                    category=clean_category(parts[0]),
                    name=parts[-1][:300],
                    content_type=content_types.type_for_name(parts[-1]),
                    size=size,
                    sha256=sha,
                    updated_at=_parse_time(info.get("mtime") or info.get("LastModified") or info.get("updated")),
                    fingerprint=fingerprint,
                )
            )
        return listing

    @staticmethod
    def _fingerprint(size: int | None, info: dict) -> str | None:
        stamp = next((info[k] for k in FINGERPRINT_KEYS if info.get(k) not in (None, "")), None)
        if size is None or stamp is None:
            return None
        return f"{size}:{stamp}"[:200]

    def read(self, asset: SourceAsset, max_bytes: int) -> bytes:
        path = self.root.joinpath(*asset.source_id.split("/"))
        try:
            with path.open("rb") as handle:
                return _read_capped(iter(lambda: handle.read(READ_CHUNK), b""), max_bytes, asset.source_id)
        except FileNotFoundError:
            raise AssetGone(asset.key) from None
