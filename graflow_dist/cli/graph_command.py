"""``graflow-dist graph MODULE:ATTR``: draw a workflow that has not run (no Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from graflow_dist.cli.app import cli
from graflow_dist.cli.loading import load_workflow
from graflow_dist.drawing.layout import DIRECTIONS, LR
from graflow_dist.utils.graph import draw_ascii, draw_dot, draw_mermaid, draw_png, draw_svg

FORMATS = ("svg", "png", "dot", "mermaid", "text")
SUFFIX_FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot",
                  ".mmd": "mermaid", ".mermaid": "mermaid", ".txt": "text"}


@cli.command("graph")
@click.argument("target", metavar="MODULE:ATTR")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format (default: from the -o suffix, else text); png needs "
                   "matplotlib and -o.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the drawing to FILE instead of standard output.")
@click.option("--direction", type=click.Choice(DIRECTIONS), default=LR, show_default=True,
              help="SVG: sources on the left (LR) or on top (TB).")
def graph(target: str, fmt: str | None, output: Path | None, direction: str) -> None:
    """Draw a workflow: MODULE:ATTR as for `submit` (a .py file or a dotted module, and a
    workflow(...) or a function returning one). Needs no Redis."""
    chosen = fmt or (_format_of(output) if output else "text")
    if chosen == "png" and output is None:
        raise click.UsageError("a PNG is written to a file: give -o FILE.png")
    wf = load_workflow(target)
    drawing = _draw(wf, chosen, direction, getattr(wf, "name", None) or target)
    if output is None:
        click.echo(drawing)
        return
    if isinstance(drawing, bytes):
        output.write_bytes(drawing)
    else:
        output.write_text(drawing if drawing.endswith("\n") else drawing + "\n",
                          encoding="utf-8")
    click.echo(f"wrote {output} ({chosen})", err=True)


def _draw(wf: Any, chosen: str, direction: str, title: str) -> str | bytes:
    if chosen == "png":
        return draw_png(wf)
    if chosen == "svg":
        return draw_svg(wf, direction=direction, title=title)
    if chosen == "mermaid":
        return draw_mermaid(wf)
    if chosen == "dot":
        return draw_dot(wf)
    return draw_ascii(wf)


def _format_of(output: Path) -> str:
    """The format ``output``'s suffix names (text without one); an unknown suffix is an
    error rather than a text drawing under a misleading name."""
    if not output.suffix:
        return "text"
    chosen = SUFFIX_FORMATS.get(output.suffix.lower())
    if chosen is None:
        raise click.BadParameter(
            f"no format is drawn as {output.suffix!r}: name the file "
            f"{', '.join(SUFFIX_FORMATS)}, or give --format", param_hint="-o/--output")
    return chosen
