"""The documentation site: the README splitter (tools/docs/split_readme.py) loses no section, and the site's
navigation (mkdocs.yml) reaches every page. `mkdocs build --strict` itself runs in the test command."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_{name}", ROOT / "tools" / "docs" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


split_readme = _load("split_readme")
SHORT = (ROOT / "tools" / "docs" / "README.short.md").read_text(encoding="utf-8")


def long_readme(extra: dict[str, str] | None = None, added: str = "") -> str:
    """A README with every mapped heading (a SPLIT section's subsections as ``###``), ``extra`` text under some."""
    extra = extra or {}
    lines = ["# toysup", "", "The intro."]
    for page in split_readme.PAGES:
        for title in page.sections:
            if title == split_readme.PREAMBLE:
                continue
            nested = page.path.startswith("experiments/") and page.path != "experiments/index.md"
            lines += ["", ("### " if nested else "## ") + title, "", extra.get(title, f"Text of {title}.")]
            if title == "Experiments: the presets":
                lines += ["", "```bash", "## not a heading: a comment in a code block", "```"]
    return "\n".join(lines) + added + "\n"


def test_every_section_lands_on_its_page_with_links_rewritten():
    text = long_readme({"Command line": "See [SSH](#long-sweeps-over-ssh) and [below](#command-line).",
                        "The terminal interface: `toysup tui`": "![shot](docs/tui.png)"})
    pages = split_readme.split(text, SHORT)
    assert set(pages) == {p.path for p in split_readme.PAGES}
    assert "See [SSH](ssh.md#long-sweeps-over-ssh) and [below](#command-line)." in pages["guides/cli.md"]
    assert "![shot](../tui.png)" in pages["guides/tui.md"]
    assert pages["guides/cli.md"].startswith("# Command line\n")  # the section's heading became the page's h1
    tms = pages["experiments/tms.md"].splitlines()
    assert [line for line in tms if line.startswith("#")] == [
        "# Toy models of superposition: intro, sparsity, geometry", "## Superposition in n=5, m=2 (`tms-intro`)",
        "## Sparsity with decaying importance (`tms-sparsity`)", "## The geometry of superposition (`tms-geometry`)"]
    assert "## not a heading: a comment in a code block" in pages["experiments/index.md"]


@pytest.mark.parametrize("added, named", [
    ("\n\n## A section nobody mapped\n\ntext", "'## A section nobody mapped' is not mapped"),
    ("\n\n### A new preset (`new`)\n\ntext", "'### A new preset (`new`)' is not mapped"),
])
def test_an_unmapped_section_stops_the_split_naming_it(added: str, named: str, tmp_path: Path, capsys):
    readme = tmp_path / "README.md"
    # a ## at the end; a ### among the experiments (under another ## it belongs to that section's page)
    text = long_readme(added="" if "###" in added else added)
    if "###" in added:
        text = text.replace("\n### The geometry of superposition", added + "\n\n### The geometry of superposition")
    readme.write_text(text, encoding="utf-8")
    assert split_readme.main(["--check", "--readme", str(readme)]) == 2
    assert named in capsys.readouterr().err


def test_a_mapped_heading_gone_from_the_readme_stops_the_split(tmp_path: Path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(long_readme().replace("## Conventions", "## Conventions, renamed"), encoding="utf-8")
    assert split_readme.main(["--check", "--readme", str(readme)]) == 2
    assert "Conventions, renamed" in capsys.readouterr().err


def test_a_link_to_no_heading_and_the_short_readme_are_refused():
    with pytest.raises(split_readme.SplitError, match="#nowhere"):
        split_readme.split(long_readme({"Conventions": "[x](#nowhere)"}), SHORT)
    with pytest.raises(split_readme.SplitError, match="already the short one"):
        split_readme.split((ROOT / "README.md").read_text(encoding="utf-8"), SHORT)


def test_the_readme_is_short_and_the_navigation_reaches_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme == SHORT and len(readme.splitlines()) <= 200
    nav = re.findall(r"^\s+- (?:[^:]+|\"[^\"]+\"): (\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    generated = set(_load("hooks").GENERATED)
    assert pages | generated == set(nav) and len(nav) == len(set(nav))
    assert {p.path for p in split_readme.PAGES} <= pages  # every README section's page is committed
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).exists(), link
