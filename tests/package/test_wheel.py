"""The wheel that ``pip install .`` installs: the five rooms and the type marker, no test code.

The repository is copied (without virtualenvs, node_modules, caches and earlier
build output, which a fresh clone does not have and which setuptools would
otherwise pick up from ``build/``) and built with pip, the way ``pip install .``
builds it; the wheel's own files are then read.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "agui_gateway"
ROOMS = ("protocol", "store", "upstream", "server", "cli")
TEST_ONLY = {"hypothesis", "pytest", "agui_testkit"}
# What a fresh clone does not have: virtualenvs, npm installs, caches, earlier builds
# (setuptools would pick stale modules up from build/), and generated data.
_NEVER_CLONED = {".git", ".venv", "node_modules", "__pycache__", ".hypothesis", "build", "dist"}
_GENERATED_DATA = {REPO / "data", REPO / "bench" / "data"}


def not_in_a_clone(directory: str, names: list[str]) -> set[str]:
    return {
        name
        for name in names
        if name in _NEVER_CLONED
        or fnmatch.fnmatch(name, "*.egg-info")
        or fnmatch.fnmatch(name, ".*_cache")
        or name.endswith(".pyc")
        or Path(directory) / name in _GENERATED_DATA
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=not_in_a_clone)
    out = work / "out"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("agui_gateway-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def imported_modules(source: bytes) -> set[str]:
    """Top-level names of every module a Python file imports (at any depth, even inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_wheel_holds_the_type_marker_and_the_five_rooms(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert f"{PACKAGE}/py.typed" in names
    for room in ROOMS:
        assert f"{PACKAGE}/{room}/__init__.py" in names, f"room {room} is missing"


def test_the_wheel_holds_every_module_of_the_package(wheel: zipfile.ZipFile) -> None:
    in_wheel = {name for name in wheel.namelist() if name.endswith(".py")}
    in_tree = {
        path.relative_to(REPO).as_posix() for path in (REPO / PACKAGE).rglob("*.py") if "__pycache__" not in path.parts
    }
    assert in_tree <= in_wheel, f"not packaged: {sorted(in_tree - in_wheel)}"


def test_the_wheel_holds_no_test_code(wheel: zipfile.ZipFile) -> None:
    top_levels = {name.split("/")[0] for name in wheel.namelist()}
    unexpected = {top for top in top_levels if top != PACKAGE and not top.endswith(".dist-info")}
    assert unexpected == set(), f"the wheel ships more than the package: {sorted(unexpected)}"
    importing_test_code = {
        name: sorted(imported_modules(wheel.read(name)) & TEST_ONLY)
        for name in wheel.namelist()
        if name.endswith(".py")
    }
    assert {name: found for name, found in importing_test_code.items() if found} == {}


def test_the_wheel_needs_no_test_only_dependency_and_installs_the_command(wheel: zipfile.ZipFile) -> None:
    dist_info = next(name.split("/")[0] for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
    metadata = wheel.read(f"{dist_info}/METADATA").decode()
    runtime = [
        line.removeprefix("Requires-Dist:").strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert runtime, "the wheel declares no runtime dependency at all"
    names = {re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0].lower() for req in runtime}
    assert names & TEST_ONLY == set()
    entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
    assert "agui-gateway = agui_gateway.cli:main" in entry_points


def test_the_wheel_ships_the_ui_page_and_its_client_bundle(wheel: zipfile.ZipFile) -> None:
    """``pip install .`` users get every static file of /ui (package data); no Node needed."""
    static = REPO / PACKAGE / "server" / "ui" / "static"
    files = [path for path in static.rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {"index.html", "app.js", "agui-client.js"}
    missing = {path.relative_to(REPO).as_posix() for path in files} - set(wheel.namelist())
    assert missing == set(), f"not packaged: {sorted(missing)}"
