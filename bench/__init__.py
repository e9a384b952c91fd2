"""Benchmarks of Cherry Sync against the local sandboxes: `python -m bench [name ...] [options]`.

Each benchmark is a module of this package with `add_arguments(parser)` and `run(args) -> int`, listed in
`bench.__main__.BENCHMARKS`. Results are written into bench/RESULTS.md, one section per benchmark.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

# The Airflow plugins folder holds the cherry_sync package; pytest adds it through pyproject, we do it here
# (at import, so worker processes started with `spawn` get it too).
for folder in (REPO, REPO / "plugins"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
