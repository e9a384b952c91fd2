"""Marketing assets: real files whose bytes match the listing, and the admin operations on them."""

from __future__ import annotations

import hashlib
import io
import re
from collections import Counter

import pytest
from PIL import Image

from sandbox.cherry.testing import CherrySandbox

MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff", "application/pdf": b"%PDF-"}


@pytest.fixture
def sandbox(cherry_sandbox_factory) -> CherrySandbox:
    return cherry_sandbox_factory(practices=2, patients_per_practice=5, rate_limits={"enabled": False})


def check_pdf(body: bytes) -> None:
    """Structure of a classic PDF: header, objects where the xref table says, trailer, EOF."""
    assert body.startswith(b"%PDF-1.") and body.rstrip().endswith(b"%%EOF")
    startxref = int(re.search(rb"startxref\s+(\d+)", body).group(1))
    assert body[startxref:].startswith(b"xref")
    offsets = [int(m) for m in re.findall(rb"(\d{10}) 00000 n", body[startxref:])]
    for number, offset in enumerate(offsets, start=1):
        assert body[offset:].startswith(f"{number} 0 obj".encode())
    assert b"/Type /Catalog" in body and b"/Type /Page " in body
    length = int(re.search(rb"/Length (\d+)", body).group(1))
    stream = body.index(b"stream\n") + len(b"stream\n")
    assert body[stream + length :].startswith(b"endstream")


def test_library_covers_every_category_with_real_files(sandbox: CherrySandbox):
    assets = sandbox.fetch_all("/v1/marketing-assets", limit=50)
    counts = Counter(a["category"] for a in assets)
    assert set(counts) == {"Seasonal", "Holiday", "Promotions", "Social", "Email"}
    assert min(counts.values()) >= 20
    assert set(Counter(a["content_type"] for a in assets)) == set(MAGIC)
    for asset in assets:
        response = sandbox.get(f"/v1/marketing-assets/{asset['id']}/content", 0)
        body = response.content
        assert response.status_code == 200
        assert response.headers["content-type"] == asset["content_type"]
        assert int(response.headers["content-length"]) == len(body) == asset["size"]
        assert hashlib.sha256(body).hexdigest() == asset["sha256"]
        assert response.headers["etag"] == f'"{asset["sha256"]}"'
        assert body.startswith(MAGIC[asset["content_type"]])
        assert 200 < len(body) < 10_000  # small
        if asset["content_type"] == "application/pdf":
            check_pdf(body)
        else:
            image = Image.open(io.BytesIO(body))
            image.load()
            assert image.format == {"image/png": "PNG", "image/jpeg": "JPEG"}[asset["content_type"]]
            assert image.size == (96, 96)
    assert len({a["sha256"] for a in assets}) == len(assets)


def test_every_practice_sees_the_library(sandbox: CherrySandbox):
    assert sandbox.fetch_all("/v1/marketing-assets", 0) == sandbox.fetch_all("/v1/marketing-assets", 1)
    one = sandbox.fetch_all("/v1/marketing-assets", 0)[0]
    assert sandbox.get(f"/v1/marketing-assets/{one['id']}", 1).json() == one


def test_change_rename_add_remove(sandbox: CherrySandbox):
    before = {a["id"]: a for a in sandbox.fetch_all("/v1/marketing-assets")}
    first, second, third = list(before)[:3]
    sandbox.advance(minutes=10)
    now = sandbox.now()

    changed = sandbox.change_asset(first)
    assert changed["sha256"] != before[first]["sha256"] and changed["updated_at"] > now
    content = sandbox.get(f"/v1/marketing-assets/{first}/content", 0).content
    assert hashlib.sha256(content).hexdigest() == changed["sha256"]

    renamed = sandbox.rename_asset(second, "Spring Refresh 2026 - Post.png")
    assert renamed["name"] == "Spring Refresh 2026 - Post.png" and renamed["sha256"] == before[second]["sha256"]

    upload = b"%PDF-1.4\n%%EOF\n"
    added = sandbox.add_asset("Holiday", "Custom Flyer.pdf", "application/pdf", content=upload)
    assert added["size"] == len(upload) and added["sha256"] == hashlib.sha256(upload).hexdigest()
    assert sandbox.get(f"/v1/marketing-assets/{added['id']}/content", 0).content == upload
    drawn = sandbox.add_asset("Social", "Drawn Post.png")
    assert sandbox.get(f"/v1/marketing-assets/{drawn['id']}/content", 0).content.startswith(MAGIC["image/png"])

    sandbox.remove_asset(third)
    assert sandbox.get(f"/v1/marketing-assets/{third}/content", 0).status_code == 404
    assert sandbox.get(f"/v1/marketing-assets/{third}", 0).status_code == 404

    after = {a["id"]: a for a in sandbox.fetch_all("/v1/marketing-assets", limit=9)}
    assert set(after) == (set(before) - {third}) | {added["id"], drawn["id"]}
    recent = sandbox.fetch_all("/v1/marketing-assets", updated_since=now)
    assert [a["id"] for a in recent] == [first, second, added["id"], drawn["id"]]


def test_asset_admin_validation(sandbox: CherrySandbox):
    base = sandbox.base_url + "/_sandbox/assets"
    assert sandbox.http.post(base, json={"category": "Nope", "name": "x"}, timeout=5).status_code == 400
    assert (
        sandbox.http.post(base, json={"category": "Email", "name": "x", "content_base64": "%%%"}, timeout=5).status_code
        == 400
    )
    assert sandbox.http.put(base + "/ast_missing/content", json={}, timeout=5).status_code == 404
    assert sandbox.http.delete(base + "/ast_missing", timeout=5).status_code == 404
