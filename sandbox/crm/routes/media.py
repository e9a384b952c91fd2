"""Media library: list files/folders (offset paging), create folders, upload files, delete.

Sibling folders with the same name are allowed, as on the real API, so clients must look a folder up
before creating it. Uploaded bytes are kept and served at `/_sandbox/media/{fileId}` (the file's url).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from sandbox.crm.auth import Caller, V2Caller
from sandbox.crm.errors import CrmError, bad_request, not_found, unprocessable
from sandbox.crm.normalize import iso_ms
from sandbox.crm.schemas import CreateFolder
from sandbox.crm.state import Location, now_ms

router = APIRouter(prefix="/medias", tags=["medias"])

UPLOAD_FIELDS = {"file", "name", "parentId", "hosted", "fileUrl", "altType", "altId"}
SORT_FIELDS = ("createdAt", "updatedAt", "name", "size")
MULTIPART_OVERHEAD = 64 * 1024


@router.get("/files")
def list_files(
    caller: V2Caller,
    alt_type: Literal["location"] = Query(alias="altType"),
    alt_id: str = Query(alias="altId"),
    sort_by: Literal[SORT_FIELDS] = Query(alias="sortBy"),  # type: ignore[valid-type]
    sort_order: Literal["asc", "desc"] = Query(alias="sortOrder"),
    kind: Literal["file", "folder"] = Query(alias="type"),
    offset: int = Query(0, ge=0),
    limit: int = Query(20, ge=1, le=1000),
    query: str | None = None,
    parent_id: str | None = Query(None, alias="parentId"),
    fetch_all: bool = Query(False, alias="fetchAll"),
) -> dict:
    """Without parentId only root objects are listed, unless fetchAll=true."""
    loc = caller.require(alt_id)
    with caller.state.lock:
        rows = [
            m
            for m in loc.media.values()
            if m["type"] == kind
            and (m.get("parentId") == parent_id if parent_id or not fetch_all else True)
            and (not query or query.lower() in m["name"].lower())
        ]
        rows.sort(key=lambda m: (m.get(sort_by) or 0, m["id"]), reverse=sort_order == "desc")
        return {"files": [_render(m) for m in rows[offset : offset + limit]]}


@router.post("/folder")
def create_folder(body: CreateFolder, caller: V2Caller) -> dict:
    loc = caller.require(body.altId)
    with caller.state.lock:
        _check_parent(loc, body.parentId)
        stamp = now_ms()
        folder = {
            "id": caller.state.ids.record_id(),
            "altId": loc.id,
            "altType": "location",
            "name": body.name,
            "parentId": body.parentId,
            "type": "folder",
            "deleted": False,
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        loc.media[folder["id"]] = folder
        return _render(folder)


@router.post("/upload-file")
async def upload_file(request: Request, caller: V2Caller) -> dict:
    """multipart/form-data: file (or hosted=true + fileUrl), name, parentId. 25 MB (500 MB video) limit."""
    config = caller.state.config
    declared = int(request.headers.get("content-length") or 0)
    if declared > config.max_video_upload_bytes + MULTIPART_OVERHEAD:
        raise _too_large(config.max_video_upload_bytes)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("Content-Type must be multipart/form-data")
    async with request.form(max_files=1, max_fields=20) as form:
        unknown = sorted(set(form.keys()) - UPLOAD_FIELDS)
        if unknown:
            raise unprocessable(*(f"property {k} should not exist" for k in unknown))
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = form.get("file")
        if "altId" in fields:
            caller.require(fields["altId"])
        if fields.get("altType", "location") != "location":
            raise unprocessable("altType must be one of the following values: location")
        hosted = fields.get("hosted", "false").lower() == "true"
        record: dict[str, Any]
        if hosted:
            if not fields.get("fileUrl"):
                raise bad_request("fileUrl is required when hosted is true")
            record, data = {"contentType": None, "size": 0, "url": fields["fileUrl"]}, None
            default_name = fields["fileUrl"].rsplit("/", 1)[-1]
        else:
            if not isinstance(upload, UploadFile):
                raise bad_request("file is required when hosted is not true")
            content_type = upload.content_type or "application/octet-stream"
            limit = config.max_video_upload_bytes if content_type.startswith("video/") else config.max_upload_bytes
            data = await upload.read(limit + 1)
            if len(data) > limit:
                raise _too_large(limit)
            record = {"contentType": content_type, "size": len(data)}
            default_name = upload.filename or "file"
    # The state lock may be held by a long search in a worker thread: don't wait for it on the event loop.
    base_url = str(request.base_url).rstrip("/")
    return await run_in_threadpool(_store_upload, caller, fields, record, data, default_name, base_url)


def _store_upload(
    caller: Caller, fields: dict[str, str], record: dict[str, Any], data: bytes | None, default_name: str, base_url: str
) -> dict:
    loc = caller.location
    with caller.state.lock:
        parent_id = fields.get("parentId") or None
        _check_parent(loc, parent_id)
        file_id = caller.state.ids.record_id()
        stamp = now_ms()
        record.update(
            {
                "id": file_id,
                "altId": loc.id,
                "altType": "location",
                "name": fields.get("name") or default_name,
                "parentId": parent_id,
                "type": "file",
                "deleted": False,
                "createdAt": stamp,
                "updatedAt": stamp,
            }
        )
        record.setdefault("url", f"{base_url}/_sandbox/media/{file_id}")
        loc.media[file_id] = record
        if data is not None:
            loc.media_bytes[file_id] = data
        return {"fileId": file_id, "url": record["url"]}


@router.delete("/{id}")
def delete_media(
    id: str,
    caller: V2Caller,
    alt_type: Literal["location"] = Query(alias="altType"),
    alt_id: str = Query(alias="altId"),
) -> dict:
    loc = caller.require(alt_id)
    with caller.state.lock:
        caller.state.record_of(loc, "media", id)
        loc.media.pop(id)
        loc.media_bytes.pop(id, None)
        return {"deleted": True, "id": id}


def _check_parent(loc: Location, parent_id: str | None) -> None:
    if parent_id is None:
        return
    parent = loc.media.get(parent_id)
    if parent is None or parent["type"] != "folder":
        raise not_found(f"Folder with id {parent_id} not found")


def _too_large(limit: int) -> CrmError:
    return CrmError(413, f"File size exceeds the maximum allowed size of {limit // (1024 * 1024)} MB")


def _render(m: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in m.items() if v is not None or k == "parentId"}
    out["_id"] = m["id"]
    out["createdAt"] = iso_ms(m["createdAt"])
    out["updatedAt"] = iso_ms(m["updatedAt"])
    return out
