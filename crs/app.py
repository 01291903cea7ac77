"""The frame of the `crs` command line: the app and its groups, the options commands share, where
the broker and the database are, and the exit codes.

A command is one small function in its module under ``crs/commands/``, decorated with the group
it belongs to (``@app.command()``, ``@stack_app.command("up")``...); it translates flags into a
call of the module that does the work. Flags may stand anywhere after the command's name.

Exit codes (the README's operator guide lists them):

==  ==============================================================================================
0   done; what was checked is sound
1   broken or failed: a broken audit chain, a request rejected or dead-lettered under ``--wait``,
    a benchmark that did not deliver everything
2   refused: a wrong flag, a value the contract does not allow (nothing was sent),
    or not found: no such request or dead letter
3   could not check: the broker or the database does not answer, or no answer came in time
==  ==============================================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar

import typer

from shared.settings import LOCAL_HOST

EXIT_OK: Final = 0
EXIT_BROKEN: Final = 1
EXIT_REFUSED: Final = 2
EXIT_UNAVAILABLE: Final = 3
EXIT_NOT_FOUND: Final = 2
"""What was asked about does not exist: the same code as a refusal (what was given names nothing)."""

START_THE_STACK: Final = "start it with `crs stack up`"

T = TypeVar("T")


class CommandFailed(Exception):
    """A command ends with one line on stderr and an exit code (never a traceback)."""

    def __init__(self, message: str, code: int = EXIT_BROKEN) -> None:
        super().__init__(message)
        self.code = code


class Refused(CommandFailed):
    """Input the command will not send or act on (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_REFUSED)


class Unavailable(CommandFailed):
    """A server the command needs does not answer (exit 3)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_UNAVAILABLE)


class NotFound(CommandFailed):
    """What the command was asked about does not exist (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_NOT_FOUND)


HELP = """Run, feed, watch and check the Customer Request System.

Addresses come from --bootstrap-servers / --mongodb-uri, then KAFKA_BOOTSTRAP_SERVERS /
MONGODB_URI, then the local stack's (CRS_KAFKA_PORT, CRS_MONGO_PORT).

Exit codes: 0 done, 1 broken or failed, 2 refused (bad flags or input, nothing sent;
or no such request), 3 could not check (broker or database down, no answer in time).
"""

app = typer.Typer(
    name="crs",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
stack_app = typer.Typer(help="Start, stop or report the local stack.", no_args_is_help=True)
topics_app = typer.Typer(help="Topic administration.", no_args_is_help=True)
audit_app = typer.Typer(help="Check and export the audit trail.", no_args_is_help=True)
dlq_app = typer.Typer(help="Inspect dead letters and send them back once fixed.", no_args_is_help=True)
chaos_app = typer.Typer(
    help="Fault suites against a running stack (kills, fuzz).",
    no_args_is_help=True,
)
# Each `crs chaos <suite>` hands its arguments to `main(argv) -> int` of `crs/chaos_<suite>.py`
# (see `crs/commands/chaos.py`): a suite is added there with one line.
app.add_typer(stack_app, name="stack")
app.add_typer(topics_app, name="topics")
app.add_typer(audit_app, name="audit")
app.add_typer(dlq_app, name="dlq")
app.add_typer(chaos_app, name="chaos")


# --------------------------------------------------------------------------------------------
# Options every command that talks to a server takes, before or after its own arguments.

BootstrapServers = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS, else the local stack's).",
        show_default=False,
    ),
]
MongodbUri = Annotated[
    str | None,
    typer.Option(
        "--mongodb-uri",
        help="MongoDB URI (default: MONGODB_URI, else the local stack's).",
        show_default=False,
    ),
]
AuditDatabase = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Audit's database (default: CRS_AUDIT_DATABASE, else crs_audit).",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print it as JSON.")]
ShowProgress = Annotated[
    bool, typer.Option("--progress", help="Show progress even when stderr is not a terminal.")
]


@dataclass(frozen=True)
class Addresses:
    """Flags given before the command (``crs --bootstrap-servers X dlq list``)."""

    bootstrap_servers: str | None = None
    mongodb_uri: str | None = None


@app.callback()
def _root(
    ctx: typer.Context, bootstrap_servers: BootstrapServers = None, mongodb_uri: MongodbUri = None
) -> None:
    ctx.obj = Addresses(bootstrap_servers, mongodb_uri)


def _given_first(ctx: typer.Context) -> Addresses:
    root = ctx.find_root().obj
    return root if isinstance(root, Addresses) else Addresses()


def kafka_address(ctx: typer.Context, flag: str | None) -> str:
    """The broker to use: the flag, then ``KAFKA_BOOTSTRAP_SERVERS``, then the local stack's."""
    from crs.stack import StackConfig

    return (
        flag
        or _given_first(ctx).bootstrap_servers
        or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or StackConfig.from_env().bootstrap_servers
    )


def mongodb_address(ctx: typer.Context, flag: str | None) -> str:
    """The database server to use: the flag, then ``MONGODB_URI``, then the local stack's."""
    from crs.stack import StackConfig

    return (
        flag
        or _given_first(ctx).mongodb_uri
        or os.environ.get("MONGODB_URI")
        or StackConfig.from_env().mongodb_uri
    )


# --------------------------------------------------------------------------------------------
# Before talking to a server: does it answer at all? A plain TCP connection, bounded, so that a
# stopped stack is reported in about a second instead of after a client library's retries.


def _host_ports(bootstrap_servers: str) -> list[tuple[str, int]]:
    found = []
    for address in bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        if port.isdigit():
            found.append((host.strip("[]") or LOCAL_HOST, int(port)))
    return found


def _mongodb_host_port(uri: str) -> tuple[str, int] | None:
    if not uri.startswith("mongodb://"):
        return None  # mongodb+srv and friends: leave it to the driver's own (bounded) timeout
    hosts = uri.removeprefix("mongodb://").split("/", 1)[0].rsplit("@", 1)[-1]
    first = hosts.split(",")[0]
    host, _, port = first.rpartition(":")
    if not port.isdigit():
        return first, 27017
    return host.strip("[]"), int(port)


async def answers(host: str, port: int, timeout: float = 1.5) -> bool:
    """Whether something accepts TCP connections on ``host:port`` within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def require_broker(bootstrap_servers: str) -> None:
    """Raise :class:`Unavailable` naming the broker if none of its addresses answers."""
    addresses = _host_ports(bootstrap_servers)
    for host, port in addresses:
        if await answers(host, port):
            return
    if addresses:
        raise Unavailable(broker_down(bootstrap_servers))


async def require_database(mongodb_uri: str) -> None:
    """Raise :class:`Unavailable` naming the database server if it does not answer."""
    found = _mongodb_host_port(mongodb_uri)
    if found is not None and not await answers(*found):
        raise Unavailable(database_down(mongodb_uri))


def broker_down(bootstrap_servers: str) -> str:
    """The line that says the broker is down and what to do."""
    return (
        f"the Kafka broker at {bootstrap_servers} does not answer; is the stack up? {START_THE_STACK} "
        "(or point --bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS at your broker)"
    )


def database_down(mongodb_uri: str) -> str:
    """The line that says the database server is down and what to do."""
    where = mongodb_uri.split("?", 1)[0]
    return (
        f"the database at {where} does not answer; is the stack up? {START_THE_STACK} "
        "(or point --mongodb-uri / MONGODB_URI at your server)"
    )


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine to its end."""
    return asyncio.run(work)
