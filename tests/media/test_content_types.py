"""Content types, file names and small helpers of the media import (no I/O)."""

from __future__ import annotations

import pytest

from cherry_sync.media import content_types as ct
from cherry_sync.media.sources import asset_key, clean_category
from cherry_sync.media.uploader import upload_name
from tests.media.conftest import PDF, png_bytes

SHA = "1a2b3c4d" + "0" * 56


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("image/png", "image/png"),
        ("Image/JPG; charset=binary", "image/jpeg"),
        ("audio/x-wav", "audio/wav"),
        ("", ct.UNKNOWN_TYPE),
        (None, ct.UNKNOWN_TYPE),
    ],
)
def test_normalise(declared, expected):
    assert ct.normalise(declared) == expected


def test_supported_types_are_media_not_archives_or_scripts():
    for ok in ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "video/mp4", "audio/mpeg"):
        assert ct.is_supported(ok), ok
    for bad in ("image/svg+xml", "application/zip", "text/html", "application/x-msdownload", ct.UNKNOWN_TYPE):
        assert not ct.is_supported(bad), bad


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Spring.PNG", "image/png"),
        ("photo.jpeg", "image/jpeg"),
        ("flyer.pdf", "application/pdf"),
        ("logo.svg", "image/svg+xml"),
        ("pack.zip", "application/zip"),
        ("README", ct.UNKNOWN_TYPE),
    ],
)
def test_type_for_name(name, expected):
    assert ct.type_for_name(name) == expected


@pytest.mark.parametrize(
    ("name", "ctype", "expected"),
    [
        ("Spring Refresh - Post.png", "image/png", "Spring Refresh - Post-1a2b3c4d.png"),
        ("Summer Glow - Photo.JPEG", "image/jpeg", "Summer Glow - Photo-1a2b3c4d.jpeg"),
        ("Flyer", "application/pdf", "Flyer-1a2b3c4d.pdf"),
        ("v1.2 banner", "image/png", "v1.2 banner-1a2b3c4d.png"),  # ".2 banner" is no extension of a PNG
        ("misnamed.pdf", "image/png", "misnamed.pdf-1a2b3c4d.png"),
        ("a/b\\c\x00 d.png", "image/png", "c d-1a2b3c4d.png"),
        ("...", "image/png", "asset-1a2b3c4d.png"),
    ],
)
def test_upload_name_is_unique_per_content_and_keeps_a_fitting_extension(name, ctype, expected):
    assert upload_name(name, SHA, ctype) == expected


def test_looks_like_checks_the_first_bytes():
    assert ct.looks_like("image/png", png_bytes(100))
    assert ct.looks_like("application/pdf", PDF)
    assert ct.looks_like("image/jpeg", b"\xff\xd8\xff\xe0rest")
    assert not ct.looks_like("image/png", b"PK\x03\x04 zip archive")
    assert not ct.looks_like("image/jpeg", png_bytes(100))
    assert ct.looks_like("video/mp4", b"\x00\x00\x00\x18ftypmp42")


def test_sizes_are_written_so_the_redactor_leaves_them_alone():
    from cherry_sync.safety import redact

    assert ct.human_size(812) == "812 B" and ct.human_size(12_600) == "12.3 KB"
    message = f"x is {ct.megabytes(27_262_977)}, over the {ct.megabytes(ct.MAX_UPLOAD_BYTES)} limit"
    assert redact(message) == message == "x is 26.0 MB, over the 25.0 MB limit"


def test_asset_keys_fit_the_store_columns():
    assert asset_key("cherry", "ast_123") == "cherry:ast_123"
    long = asset_key("folder", "Seasonal/" + "x" * 300 + ".png")
    assert len(long) <= 128 and long.startswith("folder:Seasonal/")
    assert long != asset_key("folder", "Seasonal/" + "x" * 299 + "y.png")
    assert clean_category("  Holiday /  Gifts ") == "Holiday - Gifts"
