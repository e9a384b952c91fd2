"""Reading the registry file: YAML with libyaml when it is there, once per file version within a process.

The registry is read where speed matters: every DAG file reads it when parsed (the trigger form's practice picker,
`cherry_refresh`'s event Assets), and the dag-processor re-parses every file every 30 s in a fresh process. At 1,000
practices the pure-Python YAML parser takes about a second per read; libyaml (`CSafeLoader`, shipped in PyYAML's
wheels) a small fraction of it, and a second read of an unchanged file in the same process skips the parse.

No pydantic here, and nothing heavy to import: a DAG file that only needs slugs and a few settings stays cheap.
Validation is `cherry_sync.registry`'s job.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import Any

import yaml

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml: same result, slower
    _Loader = yaml.SafeLoader

# The registry's rules for the fields read before validation (`cherry_sync.registry` checks them with these).
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
CONN_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_SLUG = 64  # the store's practices.slug column

_cache: dict[Path, tuple[bytes, list[Any]]] = {}
_lock = threading.Lock()


class RegistryFileError(Exception):
    """The registry file cannot be used at all (missing, not YAML, not a list): nothing can be synced."""


def read_entries(path: str | Path) -> list[Any]:
    """The file's entries (a YAML list), parsed once per content of the file in this process.

    The file is read every time (a few hundred kilobytes at 1,000 practices: well under a millisecond) and parsed
    only when its digest differs from the last parse's, so an edit is seen at once, whatever the file system's
    timestamp granularity. The list and its mappings are shared by every caller: read them, never change them.
    Raises `RegistryFileError` (with the line and column of a YAML syntax error) when the file cannot be used.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RegistryFileError(f"practice registry not found at {path}") from None
    except OSError as exc:
        raise RegistryFileError(f"practice registry {path} cannot be read: {type(exc).__name__}") from None
    digest = hashlib.blake2b(raw, digest_size=16).digest()
    with _lock:
        cached = _cache.get(path)
    if cached is not None and cached[0] == digest:
        return cached[1]
    entries = _parse(path, raw)
    with _lock:
        _cache[path] = (digest, entries)
    return entries


def _parse(path: Path, raw: bytes) -> list[Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryFileError(f"practice registry {path} cannot be read: {type(exc).__name__}") from None
    try:
        try:
            data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)
        except yaml.YAMLError:
            # Rare, so worth the slow parser's report: its line, column and wording are clearer than libyaml's.
            data = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise RegistryFileError(f"practice registry {path} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, list):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        raise RegistryFileError(f"practice registry {path} must be a YAML list of practices, found {found}")
    return data
