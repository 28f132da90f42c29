"""Split the long README.md into the documentation site's pages, then install the short README.

    python tools/docs/split_readme.py            # README.md -> docs/**.md, then tools/docs/README.short.md -> README.md
    python tools/docs/split_readme.py --check    # only check that every section is mapped; write nothing

The mapping below (PAGES, SPLIT) is the one place that says which README section goes to which page and in
which order. A ``## `` section goes whole (with its ``### `` subsections) to one page, unless it is in SPLIT:
then its own text goes to the page it is mapped to and each ``### `` subsection must be mapped by itself.
A section the mapping does not name, or a mapped heading the README does not have, stops the split with exit
code 2 and names the heading, so a section added on another branch is never lost silently.

Rewritten on the way: ``#anchor`` links to a section now on another page point at that page; ``docs/...``
links (the screenshots) become relative to the page; the set-up commands of the Quick start are taken from the
short README, which is where they are maintained after the split. The README written at the end carries a
marker so that the splitter refuses to split it again (it would turn the site into one page of links).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SHORT = Path(__file__).resolve().parent / "README.short.md"
MARKER = "<!-- short README: the full documentation is docs/, built with mkdocs -->"
PREAMBLE = ""  # the text before the first ``## `` heading


@dataclass(frozen=True)
class Page:
    path: str  # under docs/
    title: str  # the page's h1; a first section of the same heading text becomes that h1
    sections: tuple[str, ...]  # README headings (without the #s), in page order; PREAMBLE for the intro


PAGES: tuple[Page, ...] = (
    Page("index.md", "toysup", (PREAMBLE,)),
    Page("getting-started.md", "Quick start", ("Quick start",)),
    Page("guides/cli.md", "Command line", ("Command line",)),
    Page("guides/tui.md", "The terminal interface: `toysup tui`", ("The terminal interface: `toysup tui`",)),
    Page("guides/python.md", "From Python: notebooks", ("From Python: notebooks",)),
    Page("guides/presets-and-config.md", "Your presets and config.toml", ("Your presets and config.toml",)),
    Page("guides/figures.md", "Figures: `toysup plot`", ("Figures: `toysup plot`",)),
    Page("guides/compare.md", "Comparing runs: `toysup compare`", ("Comparing runs: `toysup compare`",)),
    Page("guides/ssh.md", "Long sweeps over SSH", ("Long sweeps over SSH",)),
    Page("guides/ray.md", "Beyond one machine: Ray", ("Beyond one machine: Ray",)),
    Page("guides/when-things-go-wrong.md", "When things go wrong", ("When things go wrong",)),
    Page("experiments/index.md", "Experiments: the presets", ("Experiments: the presets",)),
    Page("experiments/tms.md", "Toy models of superposition: intro, sparsity, geometry", (
        "Superposition in n=5, m=2 (`tms-intro`)",
        "Sparsity with decaying importance (`tms-sparsity`)",
        "The geometry of superposition (`tms-geometry`)",
    )),
    Page("experiments/phase.md", "Phase diagrams", (
        "The phase diagram, n=2, m=1 (`tms-phase`)",
        "The phase diagram, n=3, m=2 (`tms-phase-3in2`)",
    )),
    Page("experiments/adaptive.md", "Adaptive sweeps", (
        "Adaptive sweeps: refine only near the boundary (`tms-phase-adaptive`)",
    )),
    Page("experiments/neuron.md", "Neuron superposition", ("Neuron superposition (`neuron-superposition`)",)),
    Page("experiments/dropout.md", "Dropout and the privileged basis", (
        "Dropout and the privileged basis (`dropout-basis`, `dropout-dense`, `dropout-highdim`)",
    )),
    Page("experiments/incidental.md", "Incidental polysemanticity", (
        "Incidental polysemanticity from L1 (`incidental-l1`) and from noise (`incidental-noise`)",
        "Incidental polysemanticity: untied weights, the noise's kurtosis, the L1 rate "
        "(`incidental-untied`, `incidental-kurtosis`, `incidental-rate`)",
    )),
    Page("experiments/sae.md", "Sparse autoencoders", (
        "Sparse autoencoders on toy data (`sae-recovery`)",
        "SAEs on a toy model's hidden activations (`sae-hidden`, `sae-hidden-pentagon`)",
    )),
    Page("experiments/computation.md", "Computation in superposition", (
        "Computation in superposition (`abs-value`)",
        "Computation beyond |x| (`compute-functions`)",
    )),
    Page("experiments/feature-distributions.md", "Feature distributions and open-problem variants", (
        "Feature values other than uniform (`tms-feature-dist`)",
        "Open-problem variants (Nanda's list)",
    )),
    Page("reference/sweep-format.md", "Presets and the sweep file format", ("Presets and the sweep file format",)),
    Page("reference/metrics.md", "Metrics (results.csv of the superposition models)", (
        "Metrics (results.csv of the superposition models)",
    )),
    Page("reference/run-folder.md", "The run folder", ("The run folder",)),
    Page("reference/how-a-sweep-trains.md", "How a sweep trains", ("How a sweep trains",)),
    Page("reference/conventions.md", "Conventions", ("Conventions",)),
    Page("performance.md", "Performance", ("Performance",)),
    Page("contributing/layout.md", "Layout", ("Layout",)),
)

# ``## `` sections whose ``### `` subsections go to pages of their own (each must be mapped).
SPLIT = frozenset({"Experiments: the presets"})


class SplitError(Exception):
    """A README the mapping does not cover; the message names the heading."""


@dataclass
class Section:
    level: int  # 0 for the preamble, 2 or 3
    title: str
    lines: list[str]  # the heading line first (none for the preamble)


def slug(title: str) -> str:
    """GitHub's anchor for a heading (lower case, punctuation dropped, spaces to hyphens)."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def heading(line: str) -> tuple[int, str] | None:
    match = re.match(r"(#{1,6}) (.*?)\s*$", line)
    return (len(match.group(1)), match.group(2)) if match else None


def parse(text: str) -> list[Section]:
    """The README as sections: the preamble, each ``## `` section and, in SPLIT sections, each ``### ``."""
    sections = [Section(0, PREAMBLE, [])]
    fence = None
    parent = ""
    for line in text.splitlines():
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif fence is None and (h := heading(line)) and h[0] in (2, 3):
            level, title = h
            if level == 2:
                parent = title
                sections.append(Section(2, title, [line]))
                continue
            if parent in SPLIT:
                sections.append(Section(3, title, [line]))
                continue
        sections[-1].lines.append(line)
    return sections


def check_mapping(sections: list[Section]) -> dict[str, Page]:
    """Each section's page; SplitError naming the first unmapped section or mapped heading not found."""
    where = {title: page for page in PAGES for title in page.sections}
    found = {s.title for s in sections}
    for s in sections:
        if s.title not in where:
            kind = "##" if s.level == 2 else "###"
            raise SplitError(f"README section '{kind} {s.title}' is not mapped to a page: add it to PAGES in "
                             f"{Path(__file__).relative_to(ROOT)}")
    for title in where:
        if title not in found:
            raise SplitError(f"mapped heading '{title}' is not in the README: fix PAGES in "
                             f"{Path(__file__).relative_to(ROOT)}")
    return where


def render(page: Page, by_title: dict[str, Section]) -> list[str]:
    """The page's lines: its h1, then its sections with their top heading at ``##``."""
    out = [f"# {page.title}", ""]
    for i, title in enumerate(page.sections):
        section = by_title[title]
        body = section.lines
        shift = section.level - 2 if section.level else 0
        if section.level and i == 0 and title == page.title:
            body, shift = body[1:], section.level - 1  # the section's heading is the page's h1
        elif section.level == 0:
            body = [line for line in body if not re.match(r"# ", line)]  # the README's own title
        fence = None
        for line in body:
            stripped = line.lstrip()
            if fence is None and stripped.startswith(("```", "~~~")):
                fence = stripped[:3]
            elif fence is not None and stripped.startswith(fence):
                fence = None
            elif fence is None and (h := heading(line)) and h[0] > 1:
                line = "#" * (h[0] - shift) + " " + h[1]
            out.append(line)
        while out and not out[-1].strip():
            out.pop()
        out.append("")
    return out


def anchors(sections: list[Section], where: dict[str, Page]) -> dict[str, str]:
    """Every heading's GitHub anchor in the README -> the page it is on now."""
    result: dict[str, str] = {}
    for s in sections:
        fence = None
        for line in s.lines:
            stripped = line.lstrip()
            if fence is None and stripped.startswith(("```", "~~~")):
                fence = stripped[:3]
            elif fence is not None and stripped.startswith(fence):
                fence = None
            elif fence is None and (h := heading(line)) and h[0] > 1:
                result.setdefault(slug(h[1]), where[s.title].path)
    return result


LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")


def rewrite_links(lines: list[str], page: Page, anchor_pages: dict[str, str]) -> list[str]:
    """``#anchor`` to the page now holding that section; ``docs/x`` relative to the page; other files of the
    repository (not part of the site) as their path in code."""
    here = os.path.dirname(page.path)

    def relative(target: str) -> str:
        return os.path.relpath(target, here or ".").replace(os.sep, "/")

    def one(match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        if target.startswith("#"):
            name = target[1:]
            if name not in anchor_pages:
                raise SplitError(f"link to '#{name}' on page {page.path}: no README heading has that anchor")
            holder = anchor_pages[name]
            return f"{text}({'' if holder == page.path else relative(holder)}#{name})"
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            return match.group(0)
        path, _, fragment = target.partition("#")
        if path.startswith("docs/"):
            return f"{text}({relative(path[len('docs/'):])}{'#' + fragment if fragment else ''})"
        return f"{text[1:-1] if not text.startswith('!') else text} (`{path}`)"

    out, fence = [], None
    for line in lines:
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif fence is None:
            line = LINK.sub(one, line)
        out.append(line)
    return out


def commands_from_short(lines: list[str], short: str) -> list[str]:
    """A command under a ``# comment`` line that the short README also has is taken from the short README:
    the set-up and test commands are written once (there; .ci/run runs the test command verbatim)."""
    short_lines = short.splitlines()
    after = {short_lines[i]: short_lines[i + 1] for i in range(len(short_lines) - 1)
             if short_lines[i].startswith("# ")}
    out = list(lines)
    for i in range(len(out) - 1):
        if out[i] in after:
            out[i + 1] = after[out[i]]
    return out


def split(readme: str, short: str) -> dict[str, str]:
    """The site's pages (path under docs/ -> text) from a long README."""
    if MARKER in readme:
        raise SplitError("README.md is already the short one: split the long README (for example main's, "
                         "after merging the branches that edit it)")
    sections = parse(readme)
    where = check_mapping(sections)
    by_title = {s.title: s for s in sections}
    anchor_pages = anchors(sections, where)
    pages = {}
    for page in PAGES:
        lines = rewrite_links(render(page, by_title), page, anchor_pages)
        if page.path == "index.md":
            lines += contents(page)
        pages[page.path] = "\n".join(commands_from_short(lines, short)).rstrip() + "\n"
    return pages


def contents(home: Page) -> list[str]:
    """The home page's list of pages, in mapping order."""
    lines = ["## Contents", ""]
    for page in PAGES:
        if page is not home:
            lines.append(f"- [{page.title}]({page.path})")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check the mapping only; write nothing")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md", help="the long README to split")
    args = parser.parse_args(argv)
    short = SHORT.read_text(encoding="utf-8")
    try:
        pages = split(args.readme.read_text(encoding="utf-8"), short)
    except SplitError as error:
        print(f"split_readme: {error}", file=sys.stderr)
        return 2
    if args.check:
        print(f"split_readme: {len(pages)} pages, every section mapped")
        return 0
    for path, text in pages.items():
        target = DOCS / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    (ROOT / "README.md").write_text(short, encoding="utf-8")
    print(f"split_readme: wrote {len(pages)} pages under docs/ and the short README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
