"""The documentation site: the README stays short, the site's navigation (mkdocs.yml) reaches every page, and
every section the long README had (tests/data/readme_sections.json, frozen when it was split into the site)
is still a heading of a page in the navigation. `mkdocs build --strict` itself runs in the test command."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_{name}", ROOT / "tools" / "docs" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_readme_is_short_and_the_navigation_reaches_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    nav = _navigation()
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    generated = set(_load("hooks").GENERATED)
    assert pages | generated == set(nav) and len(nav) == len(set(nav))
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).exists(), link


def _navigation() -> list[str]:
    return re.findall(r"^\s+- (?:[^:]+|\"[^\"]+\"): (\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)


def test_every_section_of_the_long_readme_is_a_heading_of_a_page_in_the_navigation():
    """34 sections and the titles of 28 pages, as the README had them before it became the site."""
    sections = json.loads((ROOT / "tests" / "data" / "readme_sections.json").read_text(encoding="utf-8"))
    assert len(sections) == 28 and sum(len(page["sections"]) for page in sections.values()) == 34
    nav = set(_navigation())
    for path, page in sections.items():
        assert path in nav, path
        text = (ROOT / "docs" / path).read_text(encoding="utf-8")
        headings = {h.strip() for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
        for heading in (page["title"], *page["sections"]):
            assert heading in headings, f"{path}: {heading}"
