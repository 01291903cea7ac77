"""`crs chaos <suite>`: the fault suites, each a module ``crs/chaos_<suite>.py`` with its own
``main(argv) -> int`` and its own flags (``crs chaos fuzz --help`` is the suite's help).

A suite is added with one call of :func:`suite` below.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer

from crs.app import EXIT_NOT_FOUND, chaos_app


def suite(name: str, module: str, summary: str) -> None:
    """Register ``crs chaos NAME``, which hands every argument after it to ``MODULE.main(argv)``."""

    @chaos_app.command(
        name,
        help=f"{summary} (its flags: crs chaos {name} --help).",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )
    def command(ctx: typer.Context) -> int:
        try:
            target: Any = importlib.import_module(module)
        except ModuleNotFoundError as missing:
            if missing.name != module:
                raise
            print(f"crs chaos {name}: {module} is not part of this build")
            return EXIT_NOT_FOUND
        return int(target.main(list(ctx.args)))


suite(
    "kills", "crs.chaos_kills", "Kill services and the database at random under a steady stream of requests"
)
suite("fuzz", "crs.chaos_fuzz", "Bad messages on every inbound topic, interleaved with valid ones")
