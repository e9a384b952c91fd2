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


def publish(args, section: str, intro: str, report: str) -> int:
    """Print a benchmark's report and, unless `--no-write`, put it in its section of the results file."""
    print()
    print(report)
    if not args.no_write:
        write_section(args.results, section, intro, report)
        print(f"written to {args.results}")
    return 0


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def limits_label(args, what: str = "") -> str:
    """ "real limits" or "time-scaled 100/1 s", and the CRM latency added, for a sub-section title."""
    limits = "real limits" if args.window >= 10 else f"{what}time-scaled {args.burst}/{args.window:g} s"
    return limits + (f", +{args.latency_ms} ms CRM latency" if args.latency_ms else "")


def add_run_arguments(parser, *, latency_help: str = "added to every CRM request (HighLevel: ~100-300 ms)") -> None:
    """The options every sync benchmark shares: CRM limits and latency, store, workers, where results go."""
    from bench import RESULTS

    parser.add_argument("--window", type=float, default=1.0, help="CRM burst window in seconds (10 = real)")
    parser.add_argument("--burst", type=int, default=100, help="CRM requests per window per location (100)")
    parser.add_argument("--pace", type=int, default=95, help="hook pacing: requests per window (95)")
    parser.add_argument("--latency-ms", type=int, default=0, help=latency_help)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite", help="store backend")
    parser.add_argument("--store-url", default=None, help="use this (empty) store database instead")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per practice)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file (bench/RESULTS.md)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the results file alone")
