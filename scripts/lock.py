"""Re-pin requirements.txt and requirements-dev.txt from pyproject.toml (`make lock`).

- requirements.txt: the runtime set, what the Docker image installs: the package's dependencies plus its
  `deploy` (Celery, PostgreSQL) and `sandbox` extras, every package pinned.
- requirements-dev.txt: `-r requirements.txt` plus the `test` extra's packages (test and lint tools) pinned to
  the versions resolved alongside the runtime pins; `make test`, `make demo` and `.ci/run` install it.

Both are pip's own resolution (`pip install --dry-run --ignore-installed --report`), for this Python and platform;
nothing is installed. `--constraint FILE` keeps versions from an earlier lock where they still fit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNTIME_EXTRAS = "deploy,sandbox"
NOT_PINNED = {"cherry-sync", "pip", "setuptools", "wheel"}
HEADER = "# Pinned by `make lock` (scripts/lock.py) from pyproject.toml: {what}. Do not edit by hand.\n"


def resolve(requirement: str, constraints: list[Path]) -> dict[str, str]:
    """name -> version of everything pip would install for `requirement` into an empty environment."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        args = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed"]
        args += ["--report", str(report), requirement]
        for constraint in constraints:
            args += ["--constraint", str(constraint)]
        subprocess.run(args, cwd=REPO, check=True)
        installs = json.loads(report.read_text())["install"]
    pins = {item["metadata"]["name"]: item["metadata"]["version"] for item in installs}
    return {name: version for name, version in pins.items() if _key(name) not in NOT_PINNED}


def _key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _lines(pins: dict[str, str]) -> str:
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items(), key=lambda kv: _key(kv[0])))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--constraint", type=Path, action="append", default=[], help="keep these versions if they fit")
    args = parser.parse_args(argv)
    runtime = resolve(f".[{RUNTIME_EXTRAS}]", args.constraint)
    (REPO / "requirements.txt").write_text(
        HEADER.format(what=f"cherry-sync[{RUNTIME_EXTRAS}], the Docker image's runtime set") + _lines(runtime)
    )
    everything = resolve(".[test]", [REPO / "requirements.txt", *args.constraint])
    keys = {_key(name) for name in runtime}
    dev_only = {name: version for name, version in everything.items() if _key(name) not in keys}
    (REPO / "requirements-dev.txt").write_text(
        HEADER.format(what="cherry-sync[test], the test and lint tools on top of the runtime set")
        + "-r requirements.txt\n"
        + _lines(dev_only)
    )
    print(f"requirements.txt: {len(runtime)} pins; requirements-dev.txt: {len(dev_only)} more")


if __name__ == "__main__":
    main()
