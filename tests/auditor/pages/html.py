"""Reading rendered pages in tests: tables as rows of cell texts, with the standard parser.

The pages are asserted on what a reader sees (a table's cells), not on markup details,
so a restyled page keeps passing and a wrong value fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Cell:
    """A table cell: its visible text, and the full values behind shortened ones (the
    ``title`` of elements inside it) and its links."""

    text: str = ""
    titles: list[str] = field(default_factory=list)
    hrefs: list[str] = field(default_factory=list)


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[Cell]]] = {}
        self._table: str | None = None
        self._in_body = False
        self._row: list[Cell] | None = None
        self._cell: list[str] | None = None
        self._meta = Cell()
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._table is not None and self._in_body:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._meta = Cell()
        if self._cell is not None:
            found = dict(attrs)
            if found.get("title"):
                self._meta.titles.append(str(found["title"]))
            if tag == "a" and found.get("href"):
                self._meta.hrefs.append(str(found["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._meta.text = " ".join("".join(self._cell).split())
            self._row.append(self._meta)
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        self.texts.append(data)


def tables(page: str) -> dict[str, list[list[Cell]]]:
    """Every table's body rows (by the table's id), each a list of its cells' texts."""
    parser = _Tables()
    parser.feed(page)
    return parser.tables


def text(page: str) -> str:
    """The page's visible text with whitespace collapsed (entities decoded)."""
    parser = _Tables()
    parser.feed(page)
    return " ".join("".join(parser.texts).split())
