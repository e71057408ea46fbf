"""The architecture page maps the whole package: every module has its line, and no line
names a module that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"


def modules() -> set[str]:
    found = set()
    for path in (ROOT / "intentq").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if "versions" in parts and "migrations" in parts:
            continue  # migration revisions are listed by their family, not one by one
        found.add(".".join(parts))
    return found


def mapped() -> set[str]:
    text = PAGE.read_text()
    return set(re.findall(r"^\| `(intentq(?:\.\w+)*)` \|", text, re.M))


def test_every_module_has_its_line_on_the_architecture_page() -> None:
    assert sorted(modules() - mapped()) == []


def test_the_architecture_page_names_no_module_that_is_gone() -> None:
    assert sorted(mapped() - modules()) == []


def test_no_prefix_group_stands_where_a_package_belongs() -> None:
    # Three or more modules of one folder sharing a name prefix ("sqs_a", "sqs_b", ...)
    # are a folder asking to be made.
    groups: dict[tuple[Path, str], int] = {}
    for path in (ROOT / "intentq").rglob("*.py"):
        if "_" in path.stem.strip("_"):
            key = (path.parent, path.stem.strip("_").split("_")[0])
            groups[key] = groups.get(key, 0) + 1
    assert {k: n for k, n in groups.items() if n >= 3} == {}


def test_sqs_plumbing_is_one_package() -> None:
    assert sorted(p.name for p in (ROOT / "intentq").glob("sqs_*.py")) == []
