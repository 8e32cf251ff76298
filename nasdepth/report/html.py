"""One self-contained HTML page: inline CSS, figures as base64 PNG data URIs, no scripts and
no network access. Every string from the study (names, parameter values, reasons, paths) goes
through ``html.escape``."""

from __future__ import annotations

import base64
from html import escape

from nasdepth.report import document as D

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:900px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:0.1em}h2{border-bottom:1px solid #ddd;padding-bottom:0.2em;
margin-top:1.8em}.subtitle{color:#666;margin-top:0}
table{border-collapse:collapse;font-size:0.85em;margin:0.6em 0;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:0.25em 0.5em;text-align:right;white-space:nowrap}
td.long{white-space:normal;min-width:16em;text-align:left}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;color:#555;font-style:italic;padding:0.2em 0}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:0.9em}
.note{color:#555;font-size:0.92em}.warn{background:#fff4e5;border-left:4px solid #f0a020;
padding:0.4em 0.8em}details{margin:0.5em 0;padding:0.3em 0.6em;border:1px solid #e4e4e4}
summary{cursor:pointer;font-weight:600}nav ul{columns:2;font-size:0.92em}
dl{display:grid;grid-template-columns:max-content auto;gap:0.15em 1em}dt{font-weight:600}
dd{margin:0}
"""


def _cell(text: str) -> str:
    # long prose (advice, reasons, meanings) wraps; numbers and names stay on one line
    cls = ' class="long"' if len(text) > 40 else ""
    return f"<td{cls}>{escape(text)}</td>"


def _block(b: D.Block) -> str:
    if isinstance(b, D.Para):
        cls = {"note": ' class="note"', "warn": ' class="warn"'}.get(b.kind, "")
        return f"<p{cls}>{escape(b.text)}</p>"
    if isinstance(b, D.KeyValues):
        items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in b.items)
        return f"<dl>{items}</dl>"
    if isinstance(b, D.Table):
        header, rows, left = D.cells(b.df, b.max_rows)
        cap = f"<caption>{escape(b.caption)}</caption>" if b.caption else ""
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
        more = (f'<p class="note">{left} more rows in the CSV files.</p>' if left else "")
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"
    if isinstance(b, D.Image):
        data = base64.b64encode(b.png).decode("ascii")
        size = f' width="{b.width_px}" height="{b.height_px}"' if b.width_px else ""
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(b.caption)}"'
                f'{size}><figcaption>{escape(b.caption)}</figcaption></figure>')
    if isinstance(b, D.Details):
        inner = "\n".join(_block(x) for x in b.blocks)
        return f"<details><summary>{escape(b.summary)}</summary>\n{inner}\n</details>"
    raise TypeError(f"unknown report block {type(b).__name__}")


def render_html(report: D.Report) -> str:
    """The whole page as a string."""
    nav = "".join(f'<li><a href="#{s.anchor}">{escape(s.title)}</a></li>'
                  for s in report.sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # no scripts, no remote resources: the page opens from disk with no network access
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{escape(report.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(report.title)}</h1>",
        f'<p class="subtitle">{escape(report.subtitle)}</p>',
        f"<nav><ul>{nav}</ul></nav>",
    ]
    for s in report.sections:
        parts.append(f'<section id="{s.anchor}"><h2>{escape(s.title)}</h2>')
        parts += [_block(b) for b in s.blocks]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
