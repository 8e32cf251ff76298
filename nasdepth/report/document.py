"""The report as data: sections of paragraphs, key-value lists, tables and figures. The HTML and
Markdown writers render the same ``Report``, so both files carry the same content."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


@dataclass
class Para:
    """A paragraph of plain text (never markup: writers escape it). ``kind`` is ``text``,
    ``note`` (a caveat) or ``warn`` (a finding the reader must not miss)."""

    text: str
    kind: str = "text"


@dataclass
class KeyValues:
    items: list[tuple[str, str]]


@dataclass
class Table:
    df: pd.DataFrame
    caption: str = ""
    max_rows: int = 60


@dataclass
class Image:
    """A figure rendered once to PNG; ``name`` is its file name beside ``report.md``."""

    name: str
    png: bytes
    caption: str
    width_px: int = 0
    height_px: int = 0


@dataclass
class Details:
    """Collapsible evidence (HTML ``<details>``; a sub-heading in Markdown)."""

    summary: str
    blocks: list[Block] = field(default_factory=list)


Block = Para | KeyValues | Table | Image | Details


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        """The title as a URL fragment: ``#blocks-and-skip-connections``."""
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "section"


@dataclass
class Report:
    name: str  # the study name, shown as the title
    subtitle: str
    sections: list[Section] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"Study {self.name}"

    def images(self) -> list[Image]:
        def walk(blocks: list[Block]) -> Iterator[Image]:
            for b in blocks:
                if isinstance(b, Image):
                    yield b
                elif isinstance(b, Details):
                    yield from walk(b.blocks)

        return [img for s in self.sections for img in walk(s.blocks)]


DPI = 100


def add_image(blocks: list[Block], fig: Figure | None, name: str, caption: str) -> None:
    """Render ``fig`` to PNG (and close it) as the next of ``blocks``; ``None`` (nothing to
    draw) adds nothing."""
    if fig is None:
        return
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    w, h = fig.get_size_inches() * DPI
    plt.close(fig)
    blocks.append(Image(name=name, png=buf.getvalue(), caption=caption, width_px=int(w),
                        height_px=int(h)))


def fmt(value: Any) -> str:
    """One cell as text: integers with thousands separators, floats to 4 decimals (or 3
    significant digits when tiny or huge), NaN/None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "on" if value else "off"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v.is_integer() and abs(v) >= 1:
            return f"{int(v):,}"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3g}"
        return f"{v:.4f}"
    return str(value)


def cells(df: pd.DataFrame, max_rows: int) -> tuple[list[str], list[list[str]], int]:
    """Header, formatted rows (at most ``max_rows``) and the number of rows left out."""
    header = [str(c) for c in df.columns]
    rows = [[fmt(v) for v in row] for row in df.head(max_rows).itertuples(index=False)]
    return header, rows, max(0, len(df) - max_rows)
