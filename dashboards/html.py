"""A self-contained HTML page: inline CSS, PNGs embedded as base64, no scripts, no network."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;font-size:.9rem;margin:.6rem 0} th,td{border:1px solid #ddd;padding:.3rem .5rem;
text-align:right;vertical-align:top} th{background:#f4f4f4} td.l,th.l{text-align:left}
.swatch{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.3rem;vertical-align:middle}
.note{color:#555;font-size:.9rem} .empty{color:#8a6d3b;background:#fcf8e3;padding:.5rem;border-radius:4px}
img.plot{max-width:100%;border:1px solid #eee;margin:.5rem 0} nav a{margin-right:.8rem}
.errored{color:#b00020;font-weight:600} td code{font-size:.8rem;white-space:normal;color:#b00020}
"""


@dataclass(frozen=True)
class Section:
    """One report section; `body` is HTML, `empty` is the reason when there is nothing to show."""

    id: str
    title: str
    body: str = ""
    empty: str | None = None


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def image(name: str, png: bytes, alt: str, vectors: Sequence[str] = ()) -> str:
    """An embedded PNG; `src` is a data URI so the page works when moved or opened alone. `vectors` are
    the figure's SVG/PDF files beside the page, linked below it."""
    data = base64.b64encode(png).decode("ascii")
    links = " · ".join(f'<a class="vector" href="{esc(v)}">{esc(v.rsplit(".", 1)[-1].upper())}</a>' for v in vectors)
    below = f'<div class="note">vector: {links}</div>' if links else ""
    return f'<img class="plot" data-name="{esc(name)}" alt="{esc(alt)}" src="data:image/png;base64,{data}">{below}'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,),
          raw: bool = False) -> str:
    """A table; cells are escaped unless `raw` (then the caller escaped them)."""
    def cell(tag: str, i: int, v: str) -> str:
        cls = ' class="l"' if i in left else ""
        return f"<{tag}{cls}>{v if raw else esc(v)}</{tag}>"

    head = "".join(cell("th", i, esc(h) if raw else h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document."""
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    parts = []
    for s in sections:
        status = "empty" if s.empty else "ok"
        body = f'<p class="empty">No data: {esc(s.empty)}</p>' if s.empty else s.body
        parts.append(f'<section id="{esc(s.id)}" data-status="{status}"><h2>{esc(s.title)}</h2>{body}</section>')
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1><p class=\"note\">{subtitle}</p>"
            f"<nav>{nav}</nav>{''.join(parts)}</body></html>")
