"""What the CRM media library takes: content types, file extensions, the size limit, and a look at the bytes.

HighLevel documents the 25 MB upload limit (500 MB for video) but no list of types; the media library is for
pictures, documents, video and audio, so this allow-list is our choice (docs/media-import.md). Everything else
(archives, executables, HTML, SVG with its scripts, office files...) is rejected with `unsupported_type`. Video is
held to the same 25 MB as everything else: an asset is held in memory while it is uploaded.
"""

from __future__ import annotations

from pathlib import PurePosixPath

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
UNKNOWN_TYPE = "application/octet-stream"

# content type -> accepted file extensions, the first being the one given to uploaded files
MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg", "jpe"),
    "image/gif": ("gif",),
    "image/webp": ("webp",),
    "application/pdf": ("pdf",),
    "video/mp4": ("mp4", "m4v"),
    "video/quicktime": ("mov",),
    "video/webm": ("webm",),
    "audio/mpeg": ("mp3",),
    "audio/wav": ("wav",),
}
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/mp3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "video/x-m4v": "video/mp4",
}
_BY_EXTENSION = {ext: ctype for ctype, exts in MEDIA_TYPES.items() for ext in exts}
# Extensions of types the media library does not take, named so a rejection says what the file is.
_OTHER_TYPES = {
    "svg": "image/svg+xml",
    "zip": "application/zip",
    "exe": "application/x-msdownload",
    "html": "text/html",
    "htm": "text/html",
    "txt": "text/plain",
    "csv": "text/csv",
    "json": "application/json",
    "psd": "image/vnd.adobe.photoshop",
    "ai": "application/postscript",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "heic": "image/heic",
    "bmp": "image/bmp",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
SNIFF_BYTES = 1024


def normalise(content_type: str | None) -> str:
    """'Image/JPG; charset=x' -> 'image/jpeg'; empty -> application/octet-stream."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base) or UNKNOWN_TYPE


def is_supported(content_type: str) -> bool:
    return normalise(content_type) in MEDIA_TYPES


def type_for_name(name: str) -> str:
    """The content type a file name's extension stands for (application/octet-stream when unknown)."""
    ext = PurePosixPath(name).suffix.lower().lstrip(".")
    return _BY_EXTENSION.get(ext) or _OTHER_TYPES.get(ext) or UNKNOWN_TYPE


def split_name(name: str, content_type: str) -> tuple[str, str]:
    """(stem, extension) for an uploaded file: the name's own extension when it fits the type, else the type's."""
    ctype = normalise(content_type)
    exts = MEDIA_TYPES.get(ctype, ())
    path = PurePosixPath(name.replace("\\", "/")).name
    stem, dot, ext = path.rpartition(".")
    if dot and stem and ext.lower() in exts:
        return stem, ext.lower()
    return path, exts[0] if exts else "bin"


def looks_like(content_type: str, content: bytes) -> bool:
    """Whether the first bytes fit the declared type (a renamed archive is not a PNG). Unknown types: True."""
    ctype = normalise(content_type)
    head = content[:SNIFF_BYTES]
    if ctype == "image/png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if ctype == "image/jpeg":
        return head.startswith(b"\xff\xd8\xff")
    if ctype == "image/gif":
        return head.startswith((b"GIF87a", b"GIF89a"))
    if ctype == "image/webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if ctype == "application/pdf":
        return b"%PDF-" in head  # the header may follow a little junk (within the first 1024 bytes)
    if ctype in ("video/mp4", "video/quicktime"):
        return head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
    if ctype == "video/webm":
        return head.startswith(b"\x1a\x45\xdf\xa3")
    if ctype == "audio/mpeg":
        return head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)
    if ctype == "audio/wav":
        return head[:4] == b"RIFF" and head[8:12] == b"WAVE"
    return True


def megabytes(size: int) -> str:
    """'26.2 MB': sizes in messages (a bare long number would be taken for a phone number and redacted)."""
    return f"{size / (1024 * 1024):.1f} MB"


def human_size(size: int | None) -> str:
    """'812 B', '12.3 KB', '4.0 MB' for logs and dry runs."""
    if size is None:
        return "size unknown"
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return megabytes(size)
