"""Media library: folders (duplicate names allowed), uploads (bytes kept, 25 MB limit), listing."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def api(crm_sandbox):
    return crm_sandbox.client(0)


@pytest.fixture
def loc(crm_sandbox):
    return crm_sandbox.location(0).id


def folder(api, loc, name, parent_id=None):
    body = {"altId": loc, "altType": "location", "name": name}
    if parent_id:
        body["parentId"] = parent_id
    r = api.post("/medias/folder", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def listing(api, loc, kind, **params):
    base = {"altType": "location", "altId": loc, "sortBy": "createdAt", "sortOrder": "asc", "type": kind}
    r = api.get("/medias/files", params={**base, **params})
    assert r.status_code == 200, r.text
    return r.json()["files"]


def test_folders_with_the_same_name_are_allowed(api, loc):
    a = folder(api, loc, "Cherry Receipts")
    b = folder(api, loc, "Cherry Receipts")
    assert a["id"] != b["id"]
    assert a["type"] == "folder" and a["altId"] == loc and a["altType"] == "location" and a["parentId"] is None
    names = [f["name"] for f in listing(api, loc, "folder", query="cherry")]
    assert names == ["Cherry Receipts", "Cherry Receipts"]


def test_subfolders_and_unknown_parent(api, loc):
    parent = folder(api, loc, "2026")
    child = folder(api, loc, "March", parent["id"])
    assert child["parentId"] == parent["id"]
    assert [f["id"] for f in listing(api, loc, "folder")] == [parent["id"]]  # root only
    assert [f["id"] for f in listing(api, loc, "folder", parentId=parent["id"])] == [child["id"]]
    r = api.post("/medias/folder", json={"altId": loc, "altType": "location", "name": "x", "parentId": "nope"})
    assert r.status_code == 404


def test_folder_for_another_location_is_403(crm_sandbox, api):
    r = api.post("/medias/folder", json={"altId": crm_sandbox.location(1).id, "altType": "location", "name": "x"})
    assert r.status_code == 403


def test_upload_keeps_bytes_and_metadata(crm_sandbox, api, loc):
    target = folder(api, loc, "Statements")
    content = os.urandom(300_000)
    r = api.post(
        "/medias/upload-file",
        files={"file": ("statement.pdf", content, "application/pdf")},
        data={"name": "Statement March.pdf", "parentId": target["id"]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"fileId", "url"}
    assert crm_sandbox.media_bytes(body["fileId"]) == content
    files = listing(api, loc, "file", parentId=target["id"])
    assert len(files) == 1
    record = files[0]
    assert record["id"] == body["fileId"] and record["name"] == "Statement March.pdf"
    assert record["contentType"] == "application/pdf" and record["size"] == len(content)
    assert record["parentId"] == target["id"] and record["url"] == body["url"]


def test_upload_limit_is_25_mb(api, loc):
    limit = 25 * 1024 * 1024
    too_big = api.post("/medias/upload-file", files={"file": ("big.pdf", b"\0" * (limit + 1), "application/pdf")})
    assert too_big.status_code == 413
    assert "25 MB" in too_big.json()["message"]
    just_right = api.post("/medias/upload-file", files={"file": ("ok.pdf", b"\0" * limit, "application/pdf")})
    assert just_right.status_code == 200


def test_upload_validation(api, loc):
    not_multipart = api.post("/medias/upload-file", data={"name": "x"})
    assert not_multipart.status_code == 400
    assert "multipart" in not_multipart.json()["message"]
    no_file = api.post("/medias/upload-file", files={"name": (None, "nothing")})
    assert no_file.status_code == 400
    assert "file is required" in no_file.json()["message"]
    r = api.post("/medias/upload-file", files={"file": ("a.txt", b"a", "text/plain")}, data={"folder": "x"})
    assert r.status_code == 422
    assert r.json()["message"] == ["property folder should not exist"]
    hosted = api.post(
        "/medias/upload-file", files={"hosted": (None, "true"), "fileUrl": (None, "https://example.com/a.png")}
    )
    assert hosted.status_code == 200
    assert hosted.json()["url"] == "https://example.com/a.png"
    r = api.post("/medias/upload-file", files={"file": ("a.txt", b"a", "text/plain")}, data={"parentId": "nope"})
    assert r.status_code == 404


def test_listing_pages_with_offset_and_limit(api, loc):
    ids = [
        api.post("/medias/upload-file", files={"file": (f"f{i}.txt", b"x", "text/plain")}).json()["fileId"]
        for i in range(7)
    ]
    pages = [listing(api, loc, "file", offset=offset, limit=3) for offset in (0, 3, 6, 9)]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert [f["id"] for p in pages for f in p] == ids
    newest_first = listing(api, loc, "file", sortOrder="desc", limit=100)
    assert [f["id"] for f in newest_first] == ids[::-1]
    assert listing(api, loc, "folder") == []


def test_listing_requires_spec_parameters(crm_sandbox, api, loc):
    r = api.get("/medias/files", params={"altType": "location", "altId": loc})
    assert r.status_code == 422
    other = {"altType": "location", "altId": crm_sandbox.location(1).id, "sortBy": "createdAt"}
    r = api.get("/medias/files", params={**other, "sortOrder": "asc", "type": "file"})
    assert r.status_code == 403


def test_delete(api, loc):
    file_id = api.post("/medias/upload-file", files={"file": ("a.txt", b"a", "text/plain")}).json()["fileId"]
    r = api.delete(f"/medias/{file_id}", params={"altType": "location", "altId": loc})
    assert r.status_code == 200
    assert listing(api, loc, "file") == []
