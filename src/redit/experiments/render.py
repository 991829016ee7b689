"""Renderers for the report's blocks: Markdown with relative image links, and one self-contained, styled HTML page
(CSS inline, PNGs embedded as base64 data URIs)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# ("h1"|"h2"|"p", text) | ("note", (good, text)) | ("ul", [text]) | ("table", (headers, rows)) | ("img", (alt, file))
Block = tuple[str, Any]

STYLE = """
body{font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;
  max-width:1280px;margin:2em auto;padding:0 1.5em}
h1{font-size:1.9em;margin:.2em 0 .6em}
h2{font-size:1.35em;margin-top:2.2em;padding-bottom:.25em;border-bottom:1px solid #d8dee4}
p,li{max-width:75em}
.table{overflow-x:auto;margin:1em 0}
table{border-collapse:collapse;font-size:.92em;font-variant-numeric:tabular-nums}
th,td{padding:5px 12px;text-align:right;white-space:nowrap;border-bottom:1px solid #e6e9ec}
th{background:#f3f5f7;border-bottom:2px solid #c9d1d9;font-weight:600}
td:first-child,th:first-child{text-align:left}
tbody tr:nth-child(even) td{background:#fafbfc}
figure{margin:1.5em 0}
img{display:block;width:100%;height:auto}
figcaption{color:#57606a;font-size:.9em;text-align:center;margin-top:.3em}
.note{border-left:5px solid #b03a2e;background:#fbeeec;padding:.7em 1.1em;margin:1em 0}
.note.good{border-color:#2d8a4e;background:#edf7f0}
"""


def render_markdown(blocks: Sequence[Block]) -> str:
    """Markdown with relative image links."""
    out = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            out.append(f"{'#' * int(kind[1])} {content}")
        elif kind == "p":
            out.append(content)
        elif kind == "note":
            out.append(f"> **{content[1]}**")
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in content))
        elif kind == "table":
            headers, rows = content
            cells = [headers, ["---"] * len(headers), *rows]
            out.append("\n".join("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells))
        elif kind == "img":
            out.append(f"![{content[0]}]({content[1]})")
    return "\n\n".join(out) + "\n"


def render_html(blocks: Sequence[Block], root: Path, title: str) -> str:
    """One HTML page; image files (relative to ``root``) are embedded."""
    esc, body = html.escape, []
    for kind, content in blocks:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{esc(content)}</{kind}>")
        elif kind == "note":
            body.append(f'<div class="note{" good" if content[0] else ""}">{esc(content[1])}</div>')
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in content) + "</ul>")
        elif kind == "table":
            headers, rows = content
            head = "".join(f"<th>{esc(h)}</th>" for h in headers)
            rows_html = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
            body.append(
                f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table></div>'
            )
        elif kind == "img":
            data = base64.b64encode((root / content[1]).read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{esc(content[0])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(content[0])}</figcaption></figure>"
            )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
