"""Writing `bench/RESULTS.md`: one `## section` per benchmark, one `### sub-section` per configuration run.

Shared by every benchmark so a re-run replaces only its own sub-section and leaves the others as they are.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

HEADER = """# Benchmark results

Figures recorded by `python -m bench` (see `bench/`), each with its date, machine and command line. Every
section belongs to one benchmark; a re-run replaces its own sub-section.
"""


def machine() -> str:
    """Cores, CPU model, RAM, Python and kernel, for the record next to each figure."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        kb = int(
            next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1]
        )
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return (
        f"{os.cpu_count()} cores ({model}), {ram} RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def write_section(path: Path, section: str, intro: str, body: str) -> None:
    """Put `body` (starting with its `### ...` line) under `## section`, replacing an older run of that
    sub-section. The file is re-read right before writing; other sections are left exactly as they are."""
    text = path.read_text() if path.exists() else HEADER
    marker = f"## {section}"
    if marker not in text:
        text = text.rstrip() + f"\n\n{marker}\n\n{intro}\n"
    start = text.index(marker)
    nxt = text.find("\n## ", start + len(marker))
    end = len(text) if nxt == -1 else nxt + 1
    block = text[start:end]
    sub = body.splitlines()[0]
    if sub in block:
        s = block.index(sub)
        e = block.find("\n### ", s + len(sub))
        block = block[:s] + body.rstrip() + "\n" + ("" if e == -1 else block[e:])
    else:
        block = block.rstrip() + "\n\n" + body.rstrip() + "\n"
    text = text[:start] + block.rstrip() + "\n" + ("\n" + text[end:].lstrip() if end < len(text) else "")
    path.write_text(text)
