"""The report's markup: one self-contained HTML page (inline CSS and images, no script, nothing to fetch)."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from annotator.inspection.report.thumbnails import Thumbnail

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #f6f6f4; }
header { background: #23272f; color: #f2f2f2; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #c9c9c9; }
nav { background: #2f343d; padding: 6px 28px; position: sticky; top: 0; z-index: 2; }
nav a { color: #e8e8e8; margin-right: 16px; text-decoration: none; font-size: 13px; }
main { padding: 8px 28px 40px; max-width: 1280px; }
section { background: #fff; border-radius: 8px; padding: 14px 20px; margin: 16px 0;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
h2 { font-size: 18px; margin: 4px 0 10px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0; }
.card { background: #f1f3f6; border-radius: 6px; padding: 8px 14px; min-width: 96px; }
.card b { display: block; font-size: 20px; }
.card span { color: #555; font-size: 12px; }
.card.bad b { color: #c0392b; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.flag { color: #fff; background: #c0392b; border-radius: 4px; padding: 1px 6px; font-size: 12px; }
.ok { color: #1e7e34; }
.muted { color: #777; }
.attribute { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; margin-bottom: 12px; }
.strip { display: flex; flex-wrap: wrap; gap: 8px; margin: 4px 0 12px; }
figure { margin: 0; width: 120px; font-size: 11px; }
figure img, figure .missing { width: 96px; height: 96px; border-radius: 4px; display: block; }
figure .missing { background: #eee; color: #a33; display: flex; align-items: center; justify-content: center;
                  text-align: center; padding: 4px; box-sizing: border-box; }
figcaption { margin-top: 2px; overflow-wrap: anywhere; }
figcaption a { color: #335; }
.group { border-left: 3px solid #e45756; padding-left: 10px; margin: 8px 0; }
img.chart { max-width: 100%; }
"""


@dataclass(frozen=True)
class Tile:
    """A face in a strip: its thumbnail and the lines under it."""

    thumbnail: Thumbnail
    lines: list[str]


@dataclass
class Section:
    """A titled part of the page, already rendered to markup."""

    anchor: str
    title: str
    body: list[str] = field(default_factory=list)


def escape(value: object) -> str:
    """Text made safe for the page."""
    return html.escape(str(value), quote=True)


def number(value: float, digits: int = 3) -> str:
    """A float for a table: fixed digits, a dash for NaN."""
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def table(header: Sequence[str], rows: Iterable[Sequence[object]], numeric: Sequence[int] = ()) -> str:
    """A table; ``rows`` hold markup (escape text first); columns in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
                                    for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cards(items: Iterable[tuple[str, str, bool]]) -> str:
    """Big numbers with a caption; the flag marks a number that needs attention."""
    return '<div class="cards">' + "".join(
        f'<div class="card{" bad" if bad else ""}"><b>{escape(value)}</b><span>{escape(caption)}</span></div>'
        for value, caption, bad in items) + "</div>"


def chart(uri: str, alt: str) -> str:
    """An inline chart."""
    return f'<img class="chart" src="{uri}" alt="{escape(alt)}">'


def strip(tiles: Sequence[Tile]) -> str:
    """A row of faces, each linked to its file."""
    if not tiles:
        return '<p class="muted">none</p>'
    parts = []
    for tile in tiles:
        thumb = tile.thumbnail
        title = escape(f"{thumb.path} (face {thumb.index}, {thumb.method})")
        picture = (f'<img src="{thumb.picture}" alt="face {thumb.face_id}" title="{title}">' if thumb.picture
                   else f'<div class="missing" title="{title}">{escape(thumb.problem or "no picture")}</div>')
        name = thumb.path.rsplit("/", 1)[-1]
        lines = "".join(f"<br>{escape(line)}" for line in tile.lines)
        parts.append(f'<figure><a href="{escape(thumb.link)}" title="{title}">{picture}</a><figcaption>'
                     f'<a href="{escape(thumb.link)}">{escape(name)}</a>{lines}</figcaption></figure>')
    return '<div class="strip">' + "".join(parts) + "</div>"


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document."""
    nav = "".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.anchor}"><h2>{escape(s.title)}</h2>{"".join(s.body)}</section>' for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f'<title>{escape(title)}</title><style>{STYLE}</style></head><body>'
            f'<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header><nav>{nav}</nav>'
            f'<main>{body}</main></body></html>\n')
