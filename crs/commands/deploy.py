"""`crs deploy-files`: the per-service deployment files, generated from the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crs.app import EXIT_BROKEN, EXIT_OK, app


@app.command("deploy-files")
def deploy_files(
    root: Annotated[Path, typer.Option(help="The repository to write into.")] = Path(),
    check: Annotated[bool, typer.Option(help="Only say which files are out of date.")] = False,
) -> int:
    """Write each service's Kubernetes Deployment and disruption budget from shared/registry.py."""
    from crs.deploy import stale_files, write_files

    if check:
        stale = stale_files(root)
        for path in stale:
            print(f"out of date: {path}")
        return EXIT_BROKEN if stale else EXIT_OK
    for path in write_files(root):
        print(f"wrote {path}")
    return EXIT_OK
