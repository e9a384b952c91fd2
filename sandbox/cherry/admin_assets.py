"""Admin routes for the marketing-asset library: add (drawn or uploaded), new bytes, rename, remove.

Each change first moves the sandbox clock on by one second, so `updated_at` strictly increases.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from sandbox.cherry.assets import KIND_BY_TYPE
from sandbox.cherry.errors import invalid, not_found
from sandbox.cherry.state import CherryState

router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])
AssetCategory = Literal["Seasonal", "Holiday", "Promotions", "Social", "Email"]  # = assets.CATEGORIES
ContentType = Literal["image/png", "image/jpeg", "application/pdf"]


def _state(request: Request) -> CherryState:
    return request.app.state.cherry


# -- marketing assets ------------------------------------------------------------------------------
class NewAsset(BaseModel):
    """An asset to add; without content_base64 the sandbox draws one."""

    model_config = ConfigDict(extra="forbid")
    category: AssetCategory
    name: str = Field(min_length=1, max_length=300)
    content_type: ContentType = "image/png"
    content_base64: str | None = None


class AssetContent(BaseModel):
    """New bytes for an asset; without content_base64 the sandbox redraws it (a new variant)."""

    model_config = ConfigDict(extra="forbid")
    content_type: ContentType | None = None
    content_base64: str | None = None


class AssetRename(BaseModel):
    """A new name and/or category (the bytes stay the same)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=300)
    category: AssetCategory | None = None


def _decode(content: str | None) -> bytes | None:
    if content is None:
        return None
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid("content_base64 is not base64") from exc


def _asset(state: CherryState, asset_id: str):
    record = state.assets.get(asset_id)
    if record is None:
        raise not_found("asset")
    return record


@router.post("/assets", status_code=201)
def add_asset(request: Request, body: NewAsset) -> dict:
    state = _state(request)
    custom = _decode(body.content_base64)
    with state.lock:
        return state.assets.add(
            body.category, body.name, KIND_BY_TYPE[body.content_type], state.tick(), custom
        ).to_json()


@router.put("/assets/{asset_id}/content")
def change_asset_content(request: Request, asset_id: str, body: AssetContent) -> dict:
    state = _state(request)
    custom = _decode(body.content_base64)
    if custom is not None and body.content_type is None:
        raise invalid("content_type is required with content_base64")
    with state.lock:
        kind = KIND_BY_TYPE[body.content_type] if body.content_type else None
        return state.assets.change_content(_asset(state, asset_id), state.tick(), custom, kind).to_json()


@router.patch("/assets/{asset_id}")
def rename_asset(request: Request, asset_id: str, body: AssetRename) -> dict:
    state = _state(request)
    with state.lock:
        return state.assets.rename(_asset(state, asset_id), state.tick(), body.name, body.category).to_json()


@router.delete("/assets/{asset_id}")
def remove_asset(request: Request, asset_id: str) -> dict:
    state = _state(request)
    with state.lock:
        _asset(state, asset_id)
        state.assets.remove(asset_id)
        return {"id": asset_id, "removed": True}
