"""`crs`: run, feed, watch and check the Customer Request System.

The commands are in ``crs/commands/`` (one small function each, see :mod:`crs.app`); this module
is the entry point: it runs the command line and turns every failure into one line on stderr
and an exit code (0 done, 1 broken, 2 refused or not found, 3 could not check).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence

import typer

from crs.app import (
    EXIT_BROKEN,
    EXIT_UNAVAILABLE,
    CommandFailed,
    app,
    broker_down,
    database_down,
)


def _quiet_logging() -> None:
    from shared.logging import configure_logging

    configure_logging(service="crs", log_format="console", level="WARNING")
    # The client libraries log every failed connection attempt; `crs` says in one line what is
    # down instead (and `crs watch` says when it comes back).
    for name in ("aiokafka", "pymongo"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


GROUPS = frozenset({"stack", "topics", "audit", "dlq", "chaos"})
ROOT_OPTIONS_WITH_VALUES = frozenset({"--bootstrap-servers", "--mongodb-uri"})


def _command_name(argv: Sequence[str]) -> str:
    """``crs dlq replay`` of ``--bootstrap-servers X dlq replay --force ID``: what an error names."""
    words: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ROOT_OPTIONS_WITH_VALUES:
            skip = True
        elif not arg.startswith("-"):
            words.append(arg)
    chosen = words[:2] if words and words[0] in GROUPS else words[:1]
    return " ".join(["crs", *chosen])


def _say(message: str) -> None:
    with contextlib.suppress(OSError):
        print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `crs` console script: the exit code of the command."""
    import crs.commands  # noqa: F401 - registers every command on the app

    args = list(sys.argv[1:] if argv is None else argv)
    _quiet_logging()
    name = _command_name(args)
    try:
        code = app(args, prog_name="crs", standalone_mode=False)
    except typer.TyperException as error:
        # A wrong flag or value: one line, and where to read more.
        _say(f"{name}: {error.format_message()} (`{name} --help` shows the flags)")
        return error.exit_code
    except typer.Abort:
        return 130
    except CommandFailed as failure:
        _say(f"{name}: {failure}")
        return failure.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`crs watch | head`): stop quietly, and keep Python from
        # complaining about stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as error:  # noqa: BLE001 - every failure ends as one line, never a traceback
        return _unexpected(name, args, error)
    return int(code or 0)


def _unexpected(name: str, args: list[str], error: Exception) -> int:
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
    from pymongo.errors import ConnectionFailure

    from crs.stack import StackConfig, StackError

    if isinstance(error, StackError):
        _say(f"{name}: {error}")
        return EXIT_BROKEN
    if isinstance(error, KafkaConnectionError | KafkaTimeoutError):
        kafka = _flag(args, "--bootstrap-servers") or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        _say(f"{name}: {broker_down(kafka or StackConfig.from_env().bootstrap_servers)} ({error})")
        return EXIT_UNAVAILABLE
    if isinstance(error, ConnectionFailure):
        mongodb = _flag(args, "--mongodb-uri") or os.environ.get("MONGODB_URI")
        _say(f"{name}: {database_down(mongodb or StackConfig.from_env().mongodb_uri)}")
        return EXIT_UNAVAILABLE
    if os.environ.get("CRS_DEBUG"):
        raise error
    _say(f"{name}: failed: {type(error).__name__}: {error} (CRS_DEBUG=1 shows the traceback)")
    return EXIT_BROKEN


def _flag(args: list[str], flag: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    return None


if __name__ == "__main__":
    sys.exit(main())
