"""``report.md``: the same content as the HTML page, for a terminal or a repository. Figures
are the PNG files written beside it."""

from __future__ import annotations

from nasdepth.report import document as D


def _text(s: str) -> str:
    """Keep user strings inert where Markdown is rendered as HTML."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(s: str) -> str:
    return _text(s).replace("|", "\\|").replace("\n", " ")


def _block(b: D.Block, level: int) -> list[str]:
    if isinstance(b, D.Para):
        prefix = {"note": "_Note:_ ", "warn": "**⚠** "}.get(b.kind, "")
        return [prefix + _text(b.text), ""]
    if isinstance(b, D.KeyValues):
        return [f"- **{_text(k)}**: {_text(v)}" for k, v in b.items] + [""]
    if isinstance(b, D.Table):
        header, rows, left = D.cells(b.df, b.max_rows)
        out = [f"_{_text(b.caption)}_", ""] if b.caption else []
        out += ["| " + " | ".join(_cell(h) for h in header) + " |",
                "|" + "---|" * len(header)]
        out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
        out += ["", f"_{left} more rows in the CSV files._"] if left else []
        return out + [""]
    if isinstance(b, D.Image):
        return [f"![{_text(b.caption)}]({b.name})", ""]
    if isinstance(b, D.Details):
        return [f"{'#' * min(level + 1, 6)} {_text(b.summary)}", "",
                *(line for x in b.blocks for line in _block(x, level + 1))]
    raise TypeError(f"unknown report block {type(b).__name__}")


def render_markdown(report: D.Report) -> str:
    lines = [f"# Study `{_text(report.name)}`", "", _text(report.subtitle), ""]
    lines += [f"- [{_text(s.title)}](#{s.anchor})" for s in report.sections] + [""]
    for s in report.sections:
        lines += [f"## {_text(s.title)}", ""]
        for b in s.blocks:
            lines += _block(b, 3)
    return "\n".join(lines).rstrip() + "\n"
