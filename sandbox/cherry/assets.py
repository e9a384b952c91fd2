"""The marketing-asset library: small real PNG, JPEG and PDF files, generated on first use.

Every practice sees the same library (Cherry's marketing kit). Files are drawn deterministically from
(kind, category, name, variant), so the same seed serves the same bytes; "changing" an asset bumps its
variant, which changes the bytes and therefore the sha256. Rendering is cached and lazy: start-up never
pays for it, the first listing does (about 0.1 s for the whole library).
"""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from sandbox.cherry.data import rng_for
from sandbox.cherry.formats import stamp
from sandbox.cherry.models import IdMaker
from sandbox.cherry.seqindex import SeqIndex

CATEGORIES = ("Seasonal", "Holiday", "Promotions", "Social", "Email")
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "pdf": "application/pdf"}
KIND_BY_TYPE = {v: k for k, v in CONTENT_TYPES.items()}
FORMATS = (("Post", "png"), ("Photo", "jpeg"), ("Flyer", "pdf"))
THEMES = {
    "Seasonal": (
        "Spring Refresh",
        "Summer Glow",
        "Fall Skin Reset",
        "Winter Hydration",
        "Back to School Smile",
        "Wedding Season",
        "Sun Damage Repair",
        "New Season New Skin",
    ),
    "Holiday": (
        "Valentine's Day",
        "Mother's Day",
        "Father's Day",
        "Black Friday",
        "Cyber Monday",
        "Holiday Gift Cards",
        "New Year New You",
        "Galentine's Night",
    ),
    "Promotions": (
        "0% APR for 6 Months",
        "Botox Special",
        "Filler Financing",
        "Laser Package",
        "Body Contouring",
        "Buy Now Pay Later",
        "Membership Perks",
        "Refer a Friend",
    ),
    "Social": (
        "Apply in 60 Seconds",
        "Instagram Story",
        "Before and After",
        "Meet the Team",
        "Patient Testimonial",
        "Monthly Payments Explained",
        "No Hard Credit Check",
        "Tag a Friend",
    ),
    "Email": (
        "Welcome Header",
        "Approval Reminder",
        "Balance Available",
        "Approval Expiring Soon",
        "Treatment Follow-up",
        "Newsletter Banner",
        "Birthday Offer",
        "Win-back Offer",
    ),
}
PALETTE = (
    (183, 28, 60),
    (236, 112, 99),
    (250, 219, 216),
    (44, 62, 80),
    (142, 68, 173),
    (22, 160, 133),
    (241, 196, 15),
    (52, 152, 219),
)


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """One asset's metadata; the bytes are rendered from it (or uploaded, in `custom`)."""

    id: str
    category: str
    name: str
    kind: str  # png | jpeg | pdf
    variant: int
    updated_at: str
    art: str  # what the picture shows: fixed at creation, so a rename does not change the bytes
    custom: bytes | None = None

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.kind]

    def content(self) -> bytes:
        return self.custom if self.custom is not None else render(self.kind, self.art, self.variant)

    def to_json(self) -> dict[str, Any]:
        body = self.content()
        return {
            "id": self.id,
            "category": self.category,
            "name": self.name,
            "content_type": self.content_type,
            "size": len(body),
            "sha256": _sha256(self.kind, self.art, self.variant, self.custom),
            "updated_at": self.updated_at,
        }


@lru_cache(maxsize=8192)
def _sha256(kind: str, art: str, variant: int, custom: bytes | None) -> str:
    body = custom if custom is not None else render(kind, art, variant)
    return hashlib.sha256(body).hexdigest()


@lru_cache(maxsize=8192)
def render(kind: str, art: str, variant: int) -> bytes:
    """The file for an asset: a 96x96 picture with a caption (PNG/JPEG) or a one-page PDF flyer.

    `art` is "<category>|<name>" as the asset was created.
    """
    category, _, name = art.partition("|")
    colour = PALETTE[zlib.crc32(f"{art}|{variant}".encode()) % len(PALETTE)]
    if kind == "pdf":
        return _pdf(name, category, variant, colour)
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (96, 96), colour)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    draw.rectangle((6, 6, 89, 89), outline=(255, 255, 255), width=2)
    draw.text((12, 14), "cherry", fill=(255, 255, 255), font=font)
    initials = "".join(word[0] for word in name.split()[:3] if word[0].isalnum()).upper() or "C"
    draw.text((12, 40), initials, fill=(255, 255, 255), font=ImageFont.load_default(size=22))
    draw.text((12, 72), f"v{variant}", fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    if kind == "jpeg":
        image.save(out, format="JPEG", quality=85)
    else:
        image.save(out, format="PNG")
    return out.getvalue()


def _pdf_text(text: str) -> str:
    safe = text.encode("latin-1", "replace").decode("latin-1")
    return safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _pdf(title: str, category: str, variant: int, colour: tuple[int, int, int]) -> bytes:
    """A minimal, valid one-page PDF (US Letter) with a coloured band and two lines of Helvetica."""
    r, g, b = (f"{c / 255:.3f}" for c in colour)
    stream = (
        f"{r} {g} {b} rg 0 692 612 100 re f\n"
        f"BT /F1 28 Tf 1 1 1 rg 48 730 Td ({_pdf_text(title)}) Tj ET\n"
        f"BT /F1 14 Tf 0 0 0 rg 48 650 Td (Cherry patient financing - {_pdf_text(category)} - v{variant}) Tj ET\n"
    ).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


class AssetLibrary:
    """The assets every practice sees, in a paging index so listings stay stable while assets change."""

    def __init__(self, seed: int, now: int, next_seq) -> None:
        rng = rng_for(seed, "assets")
        self.ids = IdMaker(rng)
        self.next_seq = next_seq
        self.index = SeqIndex()
        seeded = []
        for category in CATEGORIES:
            for theme in THEMES[category]:
                for label, kind in FORMATS:
                    name = f"{theme} - {label}.{'jpg' if kind == 'jpeg' else kind}"
                    updated = stamp(now - rng.randrange(3600, 400 * 86_400))
                    seeded.append(AssetRecord(self.ids("ast"), category, name, kind, 1, updated, f"{category}|{name}"))
        for record in sorted(seeded, key=lambda a: (a.updated_at, a.id)):
            self.index.put(record.id, record, next_seq(), record.updated_at)

    def get(self, asset_id: str) -> AssetRecord | None:
        return self.index.get(asset_id)

    def _write(self, record: AssetRecord) -> AssetRecord:
        self.index.put(record.id, record, self.next_seq(), record.updated_at)
        return record

    def add(self, category: str, name: str, kind: str, updated_at: str, custom: bytes | None) -> AssetRecord:
        return self._write(
            AssetRecord(self.ids("ast"), category, name, kind, 1, updated_at, f"{category}|{name}", custom)
        )

    def change_content(
        self, record: AssetRecord, updated_at: str, custom: bytes | None, kind: str | None
    ) -> AssetRecord:
        return self._write(
            replace(record, variant=record.variant + 1, updated_at=updated_at, custom=custom, kind=kind or record.kind)
        )

    def rename(self, record: AssetRecord, updated_at: str, name: str | None, category: str | None) -> AssetRecord:
        return self._write(
            replace(record, name=name or record.name, category=category or record.category, updated_at=updated_at)
        )

    def remove(self, asset_id: str) -> None:
        self.index.remove(asset_id)
