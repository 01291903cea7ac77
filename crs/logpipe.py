"""Writes what a part of the local stack prints into its log file, rotating it as it grows.

`crs stack up` starts one per part (``python -m crs.logpipe FILE``) and points the part's stdout
and stderr at it, so every byte a part writes (its structured logs, a traceback, tansu's and
SecantusDB's own lines) is bounded: when ``FILE`` reaches ``--max-bytes`` it becomes ``FILE.1``
(``FILE.1`` becomes ``FILE.2``, and so on; ``--backups`` are kept). It ends when the part closes its
end of the pipe, i.e. when the part has stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_BACKUPS = 3


def rotate(path: Path, backups: int) -> None:
    """``path`` becomes ``path.1``, ``path.1`` becomes ``path.2``...; the oldest beyond ``backups`` goes."""
    for number in range(backups, 0, -1):
        older = path.with_name(f"{path.name}.{number}")
        if number == backups:
            older.unlink(missing_ok=True)
        newer = path if number == 1 else path.with_name(f"{path.name}.{number - 1}")
        if newer.exists():
            newer.replace(older)


def copy(source: int, path: Path, *, max_bytes: int, backups: int) -> None:
    """Copy from the file descriptor ``source`` to ``path`` until end of file, rotating at ``max_bytes``."""
    log = path.open("ab", buffering=0)
    try:
        size = log.tell()
        while chunk := os.read(source, 65536):
            while chunk:
                if size >= max_bytes:
                    log.close()
                    rotate(path, backups)
                    log = path.open("ab", buffering=0)
                    size = 0
                # Up to the limit; the rest goes into the next file (a line may be cut in two).
                part, chunk = chunk[: max_bytes - size], chunk[max_bytes - size :]
                log.write(part)
                size += len(part)
    finally:
        log.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m crs.logpipe FILE [--max-bytes N] [--backups K]``: stdin to a rotated FILE."""
    parser = argparse.ArgumentParser(prog="python -m crs.logpipe", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument("--backups", type=int, default=DEFAULT_BACKUPS)
    args = parser.parse_args(argv)
    copy(sys.stdin.fileno(), args.file, max_bytes=max(args.max_bytes, 1024), backups=max(args.backups, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
