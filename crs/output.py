"""What `crs` prints: plain lines, and tables drawn by rich (coloured only on a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): no colour or wrapping when it is not a terminal.

    Off a terminal a line is as long as it needs to be, so what a script or a pipe gets is whole.
    """
    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    return Console(
        file=stream,
        highlight=False,
        soft_wrap=not terminal,
        width=None if terminal else 10_000,
        color_system="auto" if terminal else None,
    )


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None) -> Table:
    """A borderless table: a header row, then one row per item, columns as wide as their cells."""
    drawn = Table(title=title, box=None, show_edge=False, pad_edge=False, title_justify="left")
    for name in header:
        drawn.add_column(name, no_wrap=True, header_style="bold")
    for row in rows:
        drawn.add_row(*row)
    return drawn


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None) -> None:
    """Print a table on stdout (without the padding rich leaves at the end of each line)."""
    out = console()
    with out.capture() as captured:
        out.print(table(header, rows, title=title))
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))
