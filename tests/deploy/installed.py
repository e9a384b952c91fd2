"""The project as a user installs it: a wheel built from pyproject.toml, `pip install`-ed into a fresh venv.

`install_project(folder)` copies what the wheel is built from (pyproject.toml and plugins/cherry_sync) away from
the repository, builds the wheel with pip (the build backend in its own isolated environment, as `pip install .`
does), creates a new venv and installs the wheel into it with pip. The new venv sees this test venv's packages
(Airflow and the other pins) through a `.pth` file, so nothing but the project itself is installed, and the
project comes only from the wheel: no PYTHONPATH, no plugins folder, run from outside the repository.
Used by test_package.py and by the UI's connection form test (tests/ui), whose api-server runs from that venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 600  # the first build fetches the build backend


@dataclass(frozen=True)
class InstalledProject:
    """A venv holding the cherry-sync wheel, layered over the test venv's packages."""

    venv: Path
    site_packages: Path
    wheel: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self, base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
        """An environment for this venv's python: no PYTHONPATH, this venv's bin first on PATH."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if k != "PYTHONPATH"}
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), env.get("PATH", "")])
        env["VIRTUAL_ENV"] = str(self.venv)
        env.update(extra)
        return env

    def run(self, code: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.python), "-c", code],
            cwd=cwd,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def _pip(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def install_project(folder: Path) -> InstalledProject:
    source, dist, venv = folder / "source", folder / "dist", folder / "venv"
    source.mkdir(parents=True)
    shutil.copy2(REPO / "pyproject.toml", source / "pyproject.toml")
    shutil.copytree(
        REPO / "plugins" / "cherry_sync",
        source / "plugins" / "cherry_sync",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )
    _pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(source), cwd=folder)
    (wheel,) = dist.glob("cherry_sync-*.whl")

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site_packages = Path(
        sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})  # this venv's site-packages
    )
    # This test venv's site-packages after the new venv's own (site.addsitedir also runs its .pth files).
    shared = sysconfig.get_path("purelib")
    (site_packages / "_shared_test_venv.pth").write_text(f"import site; site.addsitedir({shared!r})\n")
    _pip("--python", str(venv / "bin" / "python"), "install", "--no-deps", "--quiet", str(wheel), cwd=folder)
    return InstalledProject(venv=venv, site_packages=site_packages, wheel=wheel)
