"""The report's layout: one HTML page with its stylesheet inline, a navigation bar, and a card per section.
Nothing from elsewhere (no font, stylesheet or script): the page renders the same offline, in any browser."""

from __future__ import annotations

from pathlib import Path

from plait.html import data_uri, escape, img

STYLE = """
:root { --ink: #1f2430; --muted: #667085; --line: #e4e7ec; --card: #ffffff; --page: #f4f6f9; --accent: #3559e0;
        --good: #12805c; --bad: #c23b22; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: var(--page); }
header { background: #1f2a44; color: #fff; padding: 18px 28px 14px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .facts { color: #c9d2e8; font-size: 13px; }
nav { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line); padding: 8px 28px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 16px; font-size: 13px; }
main { padding: 18px 28px 40px; max-width: 1400px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px; margin: 0 0 18px; }
section h2 { margin: 0 0 10px; font-size: 17px; }
section h3 { margin: 16px 0 8px; font-size: 15px; }
p.note { color: var(--muted); margin: 4px 0 10px; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0 8px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f8f9fb; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
details summary { cursor: pointer; color: var(--accent); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 170px; }
.card .value { font-size: 22px; font-weight: 600; }
.card .label { color: var(--muted); font-size: 12px; }
.figures { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
figure { margin: 0; }
figure img.plot { width: 480px; max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 12px; text-align: center; }
img.thumb { display: block; max-width: 160px; max-height: 160px; min-width: 64px; height: auto; border-radius: 4px;
            image-rendering: pixelated; }  /* tiny clips and icons are shown larger, pixels kept sharp */
img.small { display: block; max-width: 72px; max-height: 72px; border-radius: 3px; }
.gallery td { text-align: left; }
.text { max-width: 320px; white-space: pre-wrap; }
.caption { color: var(--muted); font-size: 12px; }
.missing { color: var(--muted); font-style: italic; }
.right { color: var(--good); font-weight: 600; }
.wrong { color: var(--bad); font-weight: 600; }
.neighbours { display: flex; gap: 6px; }
.neighbour { font-size: 11px; text-align: center; max-width: 80px; }
.bar { display: inline-block; height: 10px; background: var(--accent); border-radius: 2px; vertical-align: middle; }
.bar.worse { background: var(--bad); }
.bar.better { background: var(--good); }
pre { background: #f8f9fb; border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow-x: auto; font-size: 12px; }
"""


def page(title: str, facts: list[str], sections: list[tuple[str, str, str]], script: str = "") -> str:
    """The whole document; `sections` are (anchor, heading, body HTML), and empty bodies are left out; `script`, if
    any, runs at the end of the body (inline: the page still requests nothing)."""
    shown = [(anchor, heading, body) for anchor, heading, body in sections if body]
    nav = "".join(f'<a href="#{anchor}">{escape(heading)}</a>' for anchor, heading, _ in shown)
    cards = "".join(f'<section id="{anchor}"><h2>{escape(heading)}</h2>{body}</section>' for anchor, heading, body in shown)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
            f'<style>{STYLE}</style></head><body><header><h1>{escape(title)}</h1>'
            f'<div class="facts">{" · ".join(escape(f) for f in facts)}</div></header>'
            f'<nav>{nav}</nav><main>{cards}</main>{f"<script>{script}</script>" if script else ""}</body></html>')


def table(headers: list[str], rows: list[list], css_class: str = "") -> str:
    """A table whose string cells are HTML already (callers escape text); numbers are formatted and right-aligned,
    and so is the heading of a column that holds only numbers."""
    numeric = [all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows if row[i] is not None)
               and any(row[i] is not None for row in rows) for i in range(len(headers))]
    head = "".join(f'<th class="{"num" if numeric[i] else "left"}">{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell(value) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, bool):
        return f'<td class="left">{escape(value)}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, float):
        return f'<td class="num">{number(value)}</td>'
    return f'<td class="left">{value}</td>'


def number(value: float) -> str:
    if value != value:  # NaN
        return "nan"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"


def figure(path: Path, caption: str) -> str:
    """A PNG from the run's plots, embedded."""
    uri = data_uri(Path(path).read_bytes(), "image/png")
    return f'<figure>{img(uri, caption, "plot")}<figcaption>{escape(caption)}</figcaption></figure>'


def figures(items: list[tuple[Path, str]]) -> str:
    shown = [figure(path, caption) for path, caption in items if Path(path).is_file()]
    return f'<div class="figures">{"".join(shown)}</div>' if shown else ""
