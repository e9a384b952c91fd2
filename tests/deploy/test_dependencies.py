"""Every third-party import of the package is a declared runtime dependency; test tools stay out of the image.

The imports are read from the source (ast: every `import` and `from ... import`, also inside functions), and each
module is traced to the installed distribution that ships its file (`importlib.metadata`). For a top-level name one
distribution owns, `packages_distributions()` says which; for a namespace several share (`airflow`: core, the task
SDK, each provider), the module's own file decides. A declared distribution that ships no code (the
`apache-airflow` meta-package) stands for the distributions it requires.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import tomllib
from collections.abc import Iterable
from functools import cache
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "plugins" / "cherry_sync"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
TEST_TOOLS = {"pytest", "pytest-timeout", "pytest-xdist", "selenium", "ruff", "aiosmtpd"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())[0])


def imported_modules(folder: Path, own: str) -> dict[str, set[str]]:
    """Absolute imports of every .py file under `folder`: module -> files, without the stdlib and `own`."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != own and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(name, set()).add(str(path))
    return found


@cache
def _top_level_owners() -> dict[str, list[str]]:
    return packages_distributions()


@cache
def _files_of(name: str) -> frozenset[str]:
    dist = distribution(name)
    return frozenset(str(dist.locate_file(file)) for file in dist.files or () if file.suffix == ".py")


def owning_distribution(module: str) -> str | None:
    """The installed distribution that ships `module` (None: not installed at all)."""
    candidates = sorted({canonical(c) for c in _top_level_owners().get(module.split(".")[0], [])})
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    # A namespace several distributions share: the module's own file says whose it is; for a name imported from
    # a module (`from airflow.sdk import BaseHook`), the deepest module that resolves.
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        try:
            spec = importlib.util.find_spec(".".join(parts[:depth]))
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin and spec.origin not in ("built-in", "frozen"):
            return next((name for name in candidates if spec.origin in _files_of(name)), None)
    return None


def covered(declared: Iterable[str]) -> set[str]:
    """The declared distributions, a code-less meta-package standing for what it requires."""
    names = {requirement_name(r) for r in declared}
    for name in list(names):
        dist = distribution(name)
        if not any(file.suffix == ".py" for file in dist.files or ()):
            names |= {requirement_name(r) for r in dist.requires or () if "extra ==" not in r}
    return names


def undeclared(imports: dict[str, set[str]], declared: Iterable[str]) -> dict[str, str]:
    """module -> its distribution (or 'not installed'), for every import no declared dependency covers."""
    allowed = covered(declared)
    problems = {}
    for module in sorted(imports):
        owner = owning_distribution(module)
        if owner is None or owner not in allowed:
            problems[module] = owner or "not installed"
    return problems


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name)] = version
    return pins


# -- tests --------------------------------------------------------------------------------------------------


def test_every_package_import_is_a_declared_runtime_dependency():
    imports = imported_modules(PACKAGE, "cherry_sync")
    assert {"airflow.sdk", "requests", "sqlalchemy", "alembic", "pydantic"} <= set(imports)  # the scan sees them
    problems = undeclared(imports, PROJECT["dependencies"])
    assert problems == {}, f"imported by cherry_sync but not in pyproject [project] dependencies: {problems}"


def test_every_sandbox_import_is_declared_for_the_sandbox():
    extras = PROJECT["optional-dependencies"]
    problems = undeclared(imported_modules(REPO / "sandbox", "sandbox"), [*PROJECT["dependencies"], *extras["sandbox"]])
    assert problems == {}, f"imported by the sandboxes but not in the `sandbox` extra: {problems}"


def test_the_check_fails_on_an_undeclared_import(tmp_path):
    """A package that imports what it does not declare (numpy, selenium, a provider the list lacks) is caught."""
    (tmp_path / "module.py").write_text(
        "import requests\n"
        "from airflow.sdk import BaseHook\n"
        "def later():\n"
        "    import numpy\n"
        "    from selenium import webdriver\n"
        "    from airflow.providers.celery.executors import celery_executor\n"
    )
    imports = {name: files for name, files in imported_modules(tmp_path, "cherry_sync").items()}
    problems = undeclared(imports, PROJECT["dependencies"])
    assert problems == {
        "numpy": "numpy",
        "selenium": "selenium",
        "airflow.providers.celery.executors": "apache-airflow-providers-celery",
    }


def test_requirements_pin_the_declarations_and_keep_test_tools_out_of_the_image():
    runtime, dev = _pins(REPO / "requirements.txt"), _pins(REPO / "requirements-dev.txt")
    extras = PROJECT["optional-dependencies"]
    for requirement in [*PROJECT["dependencies"], *extras["deploy"], *extras["sandbox"]]:
        assert requirement_name(requirement) in runtime, f"requirements.txt does not pin {requirement}"
    for requirement in extras["test"]:
        name = requirement_name(requirement)
        assert name == "cherry-sync" or name in runtime or name in dev, f"no pin for the test tool {requirement}"
    assert not TEST_TOOLS & set(runtime), f"test tools in the image's set: {TEST_TOOLS & set(runtime)}"
    assert set(dev) >= TEST_TOOLS and not set(dev) & set(runtime), "dev pins: the test tools, nothing twice"
    assert (REPO / "requirements-dev.txt").read_text().count("-r requirements.txt") == 1
