"""Every module of the package is named in docs/architecture.md and in the README's layout table.

A module added without a line saying what it is for fails here, so the two maps of the
package stay whole (issue 15). The architecture document names each module by its path
inside ``agui_gateway/``; the README's layout table by its path inside its room, in the
row of that room.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "agui_gateway"
ROOMS = ("protocol", "store", "upstream", "server", "cli")


def modules() -> list[Path]:
    """The package's modules (relative to it), less package markers and the page's files."""
    found = [
        path.relative_to(PACKAGE)
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py") and "static" not in path.parts
    ]
    assert len(found) > 50, "the package's modules were not found"
    return sorted(found)


def layout_rows() -> dict[str, str]:
    """The README's layout table: room -> the text of its row."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for room in ROOMS:
        match = re.search(rf"^\| `agui_gateway/{room}/` \|(.*)$", section, re.MULTILINE)
        assert match is not None, f"the README's layout table has no row for agui_gateway/{room}/"
        rows[room] = match.group(1)
    return rows


def test_every_module_is_named_in_the_architecture_document() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    missing = [str(module) for module in modules() if f"`{module.as_posix()}`" not in text]
    assert missing == [], f"docs/architecture.md does not name: {missing}"


def test_every_module_is_named_in_its_rooms_row_of_the_readme_layout_table() -> None:
    rows = layout_rows()
    missing = []
    for module in modules():
        room, *inside = module.parts
        if not inside:
            continue  # a module beside the rooms would fail the next test
        if f"`{Path(*inside).as_posix()}`" not in rows[room]:
            missing.append(module.as_posix())
    assert missing == [], f"the README's layout table does not name: {missing}"


def test_the_package_has_no_modules_outside_its_rooms() -> None:
    outside = [module.as_posix() for module in modules() if module.parts[0] not in ROOMS]
    assert outside == []
