"""The tables of a page as plain data (stdlib html.parser): header labels, and each body row's cell texts and
data-sort keys, so a test reads a table the way a person does."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path


@dataclass
class Table:
    id: str
    classes: str
    section: str  # the id of the enclosing <section>
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    links: list[list[str]] = field(default_factory=list)  # each row's hrefs

    def column(self, label: str) -> list[str]:
        i = self.headers.index(label)
        return [row[i] for row in self.rows]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[Table] = []
        self.sections: list[str] = []
        self.part = ""
        self.cell: list[str] | None = None
        self.header_row = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id") or "")
        elif tag == "table":
            self.tables.append(
                Table(a.get("id") or "", a.get("class") or "", self.sections[-1] if self.sections else "")
            )
        elif tag in ("thead", "tbody"):
            self.part = tag
        elif tag == "tr" and self.tables:
            if self.part == "thead":
                self.tables[-1].headers = []
            else:
                self.tables[-1].rows.append([])
                self.tables[-1].links.append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "a" and self.part == "tbody" and self.tables and a.get("href"):
            self.tables[-1].links[-1].append(a["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self.sections:
            self.sections.pop()
        elif tag in ("td", "th") and self.cell is not None and self.tables:
            text = " ".join("".join(self.cell).split())
            (self.tables[-1].headers if self.part == "thead" else self.tables[-1].rows[-1]).append(text)
            self.cell = None
        elif tag == "table":
            self.part = ""

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def tables(path: Path) -> list[Table]:
    parser = _Parser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.tables
