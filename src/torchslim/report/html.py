"""``report.html``: one self-contained page (report.md's tables and text, plots inline as SVG).

No network: no scripts, fonts or stylesheets are fetched; the CSS is inline. The Markdown is
converted by Python-Markdown (with its ``tables`` extension), imported on first use.
"""

from __future__ import annotations

import html
from typing import Any

from torchslim.report.markdown import render_markdown
from torchslim.report.schema import RunReport
from torchslim.report.summary import headline

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #1b1b1b; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.3em; font-size: 1.05em; }
.headline { font-size: 1.2em; background: #eef6ee; border-left: 4px solid #2ca02c; padding: 0.5em 0.8em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 12.5px; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d0d0; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; white-space: normal; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
"""


def render_html(report: RunReport, svgs: dict[str, str] | None = None) -> str:
    """The page: report.md with the one-line summary under its title and the plots (``svgs``: name ->
inline SVG) after the before/after table."""
    import markdown

    body = markdown.markdown(render_markdown(report), extensions=["tables"], output_format="html")
    head_end = body.index("</h1>") + len("</h1>") if "</h1>" in body else 0
    steps_at = body.find("<h2>Steps</h2>")
    steps_at = len(body) if steps_at < 0 else steps_at
    parts: list[Any] = [body[:head_end], f'<p class="headline">{html.escape(headline(report))}</p>',
                        body[head_end:steps_at]]
    if svgs:  # after the before/after table, before the per-step details
        parts.append("<h2>Plots</h2>")
        parts += [f'<figure id="{html.escape(name)}">{svg}</figure>' for name, svg in svgs.items()]
    parts.append(body[steps_at:])
    title = html.escape(f"torchslim report: {(report.model.get('origin') or {}).get('name', report.model.get('class'))}")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")
