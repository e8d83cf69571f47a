"""The docs a new user reads first stay true to the tree: every relative link (and #anchor) in README.md,
docs/*.md and the other READMEs points at a file that exists, and the plugin guide shows the example files
verbatim (so copying a recipe from the guide gives the file that tests/bench/test_plugins.py runs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PLUGIN_GUIDE = ROOT / "docs" / "plugins.md"

FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def doc_files() -> list[Path]:
    """README.md, the guides, and the READMEs beside benchmarks and reference results."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
    files += sorted((ROOT / "results").glob("**/README.md"))
    return [f for f in files if f.is_file()]


def links(markdown: str) -> list[str]:
    """Link and image targets outside code (a fenced block or `inline code` shows syntax, it links nothing)."""
    prose = INLINE_CODE.sub("", FENCE.sub("", markdown))
    return LINK.findall(prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in FENCE.sub("", markdown).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
    return result


def broken_links(doc: Path) -> list[str]:
    """Relative links of ``doc`` whose file, or whose #anchor in a Markdown file, does not exist."""
    broken = []
    for target in links(doc.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto: ... are not checked offline
            continue
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text()):
            broken.append(f"{target} (no heading #{anchor} in {path.name})")
    return broken


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file(doc: Path) -> None:
    broken = broken_links(doc)
    assert not broken, f"{doc.relative_to(ROOT)} links to missing targets: {'; '.join(broken)}"


def test_the_link_check_sees_a_broken_link_and_a_broken_anchor(tmp_path: Path) -> None:
    """The check itself can fail: a missing file, a missing heading, and links hidden in code are ignored."""
    (tmp_path / "other.md").write_text("# A heading: with `code`\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](other.md) [ok](other.md#a-heading-with-code) [ok](#top) ![img](other.md)\n"
        "# Top\n"
        "[gone](missing.md) [bad anchor](other.md#nope) [web](https://example.org/x)\n"
        "`[in code](nowhere.md)`\n```\n[in a block](nowhere.md)\n```\n"
    )
    assert broken_links(doc) == ["missing.md (no such file)", "other.md#nope (no heading #nope in other.md)"]


def test_docs_are_found() -> None:
    names = {str(p.relative_to(ROOT)) for p in doc_files()}
    assert {"README.md", "docs/plugins.md", "benchmarks/README.md"} <= names


@pytest.mark.parametrize("name", ["my_metrics.py", "my_attack.py", "my_evaluation.py"])
def test_plugin_guide_shows_the_example_files_verbatim(name: str) -> None:
    """docs/plugins.md's 'adding a metric / an attack / an evaluation' are these files, byte for byte."""
    assert (EXAMPLES / name).read_text().strip() in PLUGIN_GUIDE.read_text(), (
        f"docs/plugins.md does not show examples/{name} verbatim"
    )
