"""`crs chaos kills`: crash the services at random during a steady stream of disputes, then count.

On a stack of its own (a throw-away home and free ports, so a running local stack is left alone),
it publishes one customer, a contract and one invoice per request (each billed above the contract
price, see :func:`crs.bench.bench_world`), then sends disputes at a steady rate, each of which
should end in one credit memo on ``erp.resolutions.v1``, acknowledged by a stand-in ERP, and its
request ``closed``. Meanwhile:

- every ``--kill-every`` seconds a random service (or the second replica) gets SIGKILL and is
  started again at once;
- once, the database server gets SIGKILL mid-run and is started again a few seconds later;
- for part of the run one service runs twice (a second replica, same database and groups).

Then every service is started again, the system is given time to settle, and it prints: requests
sent, resolved (a posting on ``erp.resolutions.v1``), closed (the ERP's ack applied), lost (no
posting and no resting status), requests with two different resolutions, repeated records of one
``resolution_id`` (the ERP's idempotency key makes them harmless, but they should be rare), and
audit's verification of its hash chains. The exit code is 0 when nothing was lost, no request had
two resolutions and audit verifies.

Kafka is never killed: the local broker keeps its topics in memory, so killing it would lose them
(with Apache Kafka, a broker restart is a fault the producers' ``acks=all`` and replication cover).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crs.bench import bench_world
from crs.io import TopicRecord, producer, publish_json, publish_many, tail
from crs.stack import (
    SERVICES,
    StackConfig,
    find_free_port,
    kill_part,
    replica_part,
    stack_down,
    stack_on_free_ports,
    stack_up,
    start_part,
    start_replica,
    stop_part,
)
from shared.identity import crm_request_id
from shared.topics import ERP_ACKS, ERP_RESOLUTIONS, REQUEST_STATUS

RESTING_STATUSES = frozenset(
    {"resolved", "closed", "rejected", "duplicate_of", "on_hold", "awaiting_approval"}
)
"""Statuses a request can rest in (someone else's move). ``routed`` rests only with a reason: the
request was handed back to its queue for a person."""
FINISHED_STATUSES = frozenset({"closed", "rejected", "duplicate_of"})


@dataclass(frozen=True)
class KillsPlan:
    """What the run does, and when (times as shares of the sending period)."""

    requests: int = 10_000
    rate: float = 10.0
    """Requests sent per second."""
    kill_every: float = 5.0
    database_restart_at: float = 0.4
    database_down_seconds: float = 3.0
    replica_service: str = "resolution"
    replica_from: float = 0.2
    replica_until: float = 0.6
    session_timeout_ms: int = 6_000
    settle_timeout: float = 1_800.0
    quiet_seconds: float = 90.0
    """Settling ends early once every request has finished, or nothing new came for this long."""
    seed: int = 1


@dataclass
class Outcomes:
    """What the request topics say happened to each request, gathered while the run goes on."""

    statuses: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    resolutions: dict[str, Counter[str]] = field(default_factory=dict)
    postings: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)
    last_record_at: float = field(default_factory=time.monotonic)

    def observe(self, record: TopicRecord) -> None:
        value = record.value if isinstance(record.value, dict) else {}
        request_id = str(value.get("request_id") or record.key)
        self.last_record_at = time.monotonic()
        if record.topic == REQUEST_STATUS:
            self.statuses.setdefault(request_id, []).append((str(value.get("status")), value.get("reason")))
        elif record.topic == ERP_RESOLUTIONS:
            self.resolutions.setdefault(request_id, Counter())[str(value.get("resolution_id"))] += 1
            amount = value.get("amount") or {}
            posting = (str(value.get("kind")), str(amount.get("amount")), str(value.get("invoice_id")))
            self.postings.setdefault(request_id, set()).add(posting)

    def finished(self, request_id: str) -> bool:
        return any(status in FINISHED_STATUSES for status, _ in self.statuses.get(request_id, ()))

    def resting(self, request_id: str) -> bool:
        return any(
            status in RESTING_STATUSES or (status == "routed" and reason)
            for status, reason in self.statuses.get(request_id, ())
        )

    def final_status(self, request_id: str) -> str:
        seen = self.statuses.get(request_id)
        if not seen:
            return "none"
        finished = [status for status, _ in seen if status in FINISHED_STATUSES]
        return finished[-1] if finished else seen[-1][0]


@dataclass
class Timeline:
    """The faults injected, for the report."""

    kills: Counter[str] = field(default_factory=Counter)
    database_restarts: int = 0
    database_down_seconds: float = 0.0
    replica_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KillsReport:
    """The figures `crs chaos kills` prints."""

    plan: KillsPlan
    sent: int
    resolved: int
    closed: int
    lost: list[str]
    two_resolutions: list[str]
    repeated_records: int
    repeated_resolution_ids: int
    final_statuses: Counter[str]
    audit_intact: bool
    audit_lines: list[str]
    timeline: Timeline
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.lost and not self.two_resolutions and self.audit_intact

    def format(self) -> str:
        kills = ", ".join(f"{part} {count}" for part, count in sorted(self.timeline.kills.items()))
        lines = [
            f"crs chaos kills: {self.plan.requests} disputes at {self.plan.rate:g}/s, "
            f"SIGKILL of a random service every {self.plan.kill_every:g} s",
            f"  kills: {sum(self.timeline.kills.values())} ({kills or 'none'})",
            f"  database server killed and restarted {self.timeline.database_restarts} time(s), "
            f"down {self.timeline.database_down_seconds:.1f} s",
            f"  {self.plan.replica_service} ran as two replicas for {self.timeline.replica_seconds:.0f} s",
            "",
            *(
                f"{label:<40}{figure:>7}"
                for label, figure in (
                    ("requests sent", self.sent),
                    (f"resolved (posted on {ERP_RESOLUTIONS})", self.resolved),
                    ("closed (the ERP's ack applied)", self.closed),
                    ("lost (no posting, no resting status)", len(self.lost)),
                    ("with two different resolutions", len(self.two_resolutions)),
                    ("repeated records of a resolution_id", self.repeated_records),
                    ("resolution ids published more than once", self.repeated_resolution_ids),
                )
            ),
            "final statuses: "
            + ", ".join(f"{status} {count}" for status, count in self.final_statuses.most_common()),
            f"audit verification: {'INTACT' if self.audit_intact else 'BROKEN'}",
            *(f"  {line}" for line in self.audit_lines),
            f"took {self.seconds:.0f} s",
        ]
        if self.lost:
            lines.append("lost: " + ", ".join(self.lost[:20]))
        if self.two_resolutions:
            lines.append("two resolutions: " + ", ".join(self.two_resolutions[:20]))
        lines.append("result: " + ("PASSED" if self.passed else "FAILED"))
        return "\n".join(lines)


def chaos_stack(home: Path, *, session_timeout_ms: int) -> StackConfig:
    """A stack of the run's own: ``home`` for its state, free loopback ports."""
    return stack_on_free_ports(
        home=home,
        extra_env={f"CRS_{name.upper()}_SESSION_TIMEOUT_MS": str(session_timeout_ms) for name in SERVICES},
    )


async def run_kills(
    config: StackConfig, plan: KillsPlan, *, say: Callable[[str], None] = print
) -> KillsReport:
    """Run the kills suite against ``config`` (started here if it is not running) and report."""
    started = time.monotonic()
    run_id = uuid.uuid4().hex[:8].upper()
    reference, requests = bench_world(run_id, plan.requests)
    request_ids = [crm_request_id(key) for _, key, _ in requests]

    say(f"chaos {run_id}: starting a stack in {config.home}")
    await stack_up(config, timeout=180)
    say(f"  publishing 1 customer, 1 contract and {plan.requests} invoices")
    async with producer(config.bootstrap_servers) as client:
        await publish_many(client, reference)
    await _wait_for_reference_data(config, say)

    outcomes, timeline = Outcomes(), Timeline()
    observers = [
        asyncio.create_task(_collect(config.bootstrap_servers, outcomes)),
        asyncio.create_task(_stand_in_erp(config.bootstrap_servers)),
    ]
    try:
        send_seconds = plan.requests / plan.rate
        say(f"  sending {plan.requests} disputes over {send_seconds:.0f} s while killing services")
        sending = asyncio.create_task(_send_steadily(config.bootstrap_servers, requests, plan.rate, say))
        chaos = asyncio.create_task(FaultInjector(config, plan, timeline, say=say).run(send_seconds))
        await sending
        chaos.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await chaos
        say("  sending done; every service started again, the second replica stopped")
        await stop_part(config, replica_part(plan.replica_service, "2"))
        await stack_up(config, timeout=180)
        await _settle(outcomes, request_ids, plan, say)
        await _wait_for_audit(config.health_ports["audit"], say)
    finally:
        for task in observers:
            task.cancel()
        await asyncio.gather(*observers, return_exceptions=True)

    from crs.audit import INTACT, verify_store
    from services.audit.reader import AuditReader

    async with AuditReader.connect(config.mongodb_uri, "crs_audit") as reader:
        code, audit_lines = await verify_store(reader)
    repeats = [
        count - 1 for counter in outcomes.resolutions.values() for count in counter.values() if count > 1
    ]
    return KillsReport(
        plan=plan,
        sent=len(request_ids),
        resolved=sum(1 for request_id in request_ids if outcomes.resolutions.get(request_id)),
        closed=sum(1 for request_id in request_ids if outcomes.final_status(request_id) == "closed"),
        lost=[
            request_id
            for request_id in request_ids
            if not outcomes.resolutions.get(request_id) and not outcomes.resting(request_id)
        ],
        two_resolutions=[
            request_id
            for request_id in request_ids
            if len(outcomes.resolutions.get(request_id, ())) > 1
            or len(outcomes.postings.get(request_id, ())) > 1
        ],
        repeated_records=sum(repeats),
        repeated_resolution_ids=len(repeats),
        final_statuses=Counter(outcomes.final_status(request_id) for request_id in request_ids),
        audit_intact=code == INTACT,
        audit_lines=audit_lines,
        timeline=timeline,
        seconds=time.monotonic() - started,
    )


async def _wait_for_reference_data(
    config: StackConfig, say: Callable[[str], None], timeout: float = 1_800
) -> None:
    """Until validation and resolution have consumed every reference record (their /metrics show
    no backlog): each keeps its own view, read by no one else."""
    from crs.drain import drain

    services = ("validation", "resolution")
    metrics = {name: f"http://127.0.0.1:{config.health_ports[name]}/metrics" for name in services}
    left = await drain(metrics, timeout=timeout, say=lambda line: say(f"  {line}"), interval=1.0)
    if left.total or left.silent:
        raise TimeoutError(f"{' and '.join(services)} did not take in the run's invoices in {timeout:.0f} s")
    say(f"  {' and '.join(services)} have taken in the run's invoices")


async def _send_steadily(
    bootstrap_servers: str, requests: Sequence[tuple[str, str, Any]], rate: float, say: Callable[[str], None]
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    step = max(len(requests) // 10, 1)
    async with producer(bootstrap_servers) as client:
        for number, (topic, key, value) in enumerate(requests, start=1):
            await asyncio.sleep(max(started + number / rate - loop.time(), 0))
            await publish_json(client, topic, key, value)
            if number % step == 0:
                say(f"  sent {number}/{len(requests)}")


class FaultInjector:
    """Kills a random service every ``kill_every`` s, restarts the database once, runs a replica a while."""

    def __init__(
        self, config: StackConfig, plan: KillsPlan, timeline: Timeline, *, say: Callable[[str], None]
    ) -> None:
        self.config = config
        self.plan = plan
        self.timeline = timeline
        self.say = say
        self.rng = random.Random(plan.seed)  # noqa: S311 - chaos, not security
        self.replica = replica_part(plan.replica_service, "2")
        self.replica_port = find_free_port()
        self.replica_started_at: float | None = None
        self.database_restarted = False
        self._restarts: set[asyncio.Task[None]] = set()

    @property
    def replica_running(self) -> bool:
        return self.replica_started_at is not None and self.timeline.replica_seconds == 0

    async def run(self, send_seconds: float) -> None:
        """Until cancelled (when sending is done)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            while True:
                await asyncio.sleep(self.plan.kill_every)
                share = (loop.time() - started) / send_seconds
                await self._replica_at(share)
                if not self.database_restarted and share >= self.plan.database_restart_at:
                    await self._restart_database()
                victim = self.rng.choice([*SERVICES, *([self.replica] if self.replica_running else [])])
                if kill_part(self.config, victim) is not None:
                    self.timeline.kills[victim] += 1
                self._in_background(self._start(victim))
        finally:
            if self.replica_running and self.replica_started_at is not None:
                self.timeline.replica_seconds = loop.time() - self.replica_started_at
            for task in list(self._restarts):
                task.cancel()
            await asyncio.gather(*self._restarts, return_exceptions=True)

    async def _replica_at(self, share: float) -> None:
        loop = asyncio.get_running_loop()
        if self.replica_started_at is None and self.plan.replica_from <= share < self.plan.replica_until:
            self.replica_started_at = loop.time()
            self.say(f"  {self.replica}: a second replica of {self.plan.replica_service} starts")
            self._in_background(self._start(self.replica))
        elif (
            self.replica_running and share >= self.plan.replica_until and self.replica_started_at is not None
        ):
            self.timeline.replica_seconds = loop.time() - self.replica_started_at
            self.say(f"  {self.replica}: stopped")
            await stop_part(self.config, self.replica)

    async def _restart_database(self) -> None:
        loop = asyncio.get_running_loop()
        self.database_restarted = True
        down = loop.time()
        kill_part(self.config, "mongodb")
        self.say("  mongodb: SIGKILL")
        await asyncio.sleep(self.plan.database_down_seconds)
        await start_part(self.config, "mongodb", timeout=120)
        self.timeline.database_restarts += 1
        self.timeline.database_down_seconds = loop.time() - down
        self.say(f"  mongodb: back after {self.timeline.database_down_seconds:.1f} s")

    async def _start(self, part: str) -> None:
        with contextlib.suppress(Exception):  # killed again while starting: the next kill restarts it
            if part == self.replica:
                await start_replica(
                    self.config, self.plan.replica_service, name="2", health_port=self.replica_port
                )
            else:
                await start_part(self.config, part, wait=False)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)


async def _collect(bootstrap_servers: str, outcomes: Outcomes) -> None:
    async for record in tail(bootstrap_servers, [REQUEST_STATUS, ERP_RESOLUTIONS]):
        outcomes.observe(record)


async def _stand_in_erp(bootstrap_servers: str) -> None:
    """The ERP: posts every resolution it reads and acknowledges it (again for a repeat, as ERPs do)."""
    async with producer(bootstrap_servers) as client:
        async for record in tail(bootstrap_servers, [ERP_RESOLUTIONS]):
            value = record.value if isinstance(record.value, dict) else {}
            resolution_id, request_id = value.get("resolution_id"), value.get("request_id")
            if not resolution_id or not request_id:
                continue
            ack = {
                "resolution_id": resolution_id,
                "request_id": request_id,
                "status": "posted",
                "erp_document_id": f"ERP-{resolution_id}",
                "posted_at": datetime.now(UTC).isoformat(),
            }
            await publish_json(client, ERP_ACKS, request_id, ack)


async def _settle(
    outcomes: Outcomes, request_ids: Sequence[str], plan: KillsPlan, say: Callable[[str], None]
) -> None:
    """Until every request has finished, nothing new arrives for a while, or time is up."""
    deadline = time.monotonic() + plan.settle_timeout
    shown = -1
    while time.monotonic() < deadline:
        finished = sum(1 for request_id in request_ids if outcomes.finished(request_id))
        if finished != shown:
            say(f"  settling: {finished}/{len(request_ids)} finished")
            shown = finished
        if finished == len(request_ids):
            return
        if time.monotonic() - outcomes.last_record_at > plan.quiet_seconds:
            say(f"  settling: nothing new for {plan.quiet_seconds:.0f} s")
            return
        await asyncio.sleep(2.0)
    say(f"  settling: gave up after {plan.settle_timeout:.0f} s")


async def _wait_for_audit(health_port: int, say: Callable[[str], None], timeout: float = 600) -> None:
    """Until audit's consumer lag is zero (its /metrics), so that verification covers every record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lag = await asyncio.to_thread(_audit_lag, health_port)
        if lag == 0:
            say("  audit has recorded everything")
            return
        await asyncio.sleep(2.0)
    say(f"  audit still behind after {timeout:.0f} s: verifying what it has recorded")


def _audit_lag(health_port: int) -> int | None:
    """The sum of audit's ``crs_consumer_lag`` series; None when it cannot tell (no series yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return None
    lags = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("crs_consumer_lag{")
    ]
    return int(sum(lags)) if lags else None


def build_parser() -> argparse.ArgumentParser:
    plan = KillsPlan()
    parser = argparse.ArgumentParser(
        prog="crs chaos kills",
        description="SIGKILL services at random during a steady stream of disputes, restart the database "
        "server mid-run, run one service twice for a while; then count what was lost or posted twice.",
    )
    parser.add_argument("--requests", type=int, default=plan.requests, help="disputes to send (10000)")
    parser.add_argument("--rate", type=float, default=plan.rate, help="disputes per second (10)")
    parser.add_argument("--kill-every", type=float, default=plan.kill_every, help="seconds between kills (5)")
    parser.add_argument(
        "--database-restart-at",
        type=float,
        default=plan.database_restart_at,
        help="when to kill and restart the database server, as a share of the sending period (0.4)",
    )
    parser.add_argument("--database-down", type=float, default=plan.database_down_seconds, help="seconds (3)")
    parser.add_argument(
        "--replica-service", choices=SERVICES, default=plan.replica_service, help="the service run twice"
    )
    parser.add_argument(
        "--replica-window",
        type=float,
        nargs=2,
        default=(plan.replica_from, plan.replica_until),
        metavar=("FROM", "UNTIL"),
        help="when the second replica runs, as shares of the sending period (0.2 0.6)",
    )
    parser.add_argument(
        "--session-timeout-ms",
        type=int,
        default=plan.session_timeout_ms,
        help="the services' consumer session timeout: how soon a killed member's partitions move (6000)",
    )
    parser.add_argument("--settle-timeout", type=float, default=plan.settle_timeout, help="seconds (1800)")
    parser.add_argument("--seed", type=int, default=plan.seed, help="seed of the kills' choices (1)")
    parser.add_argument("--home", type=Path, help="the stack's state directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running and its home in place")
    return parser


async def kills(args: argparse.Namespace, *, say: Callable[[str], None] = print) -> int:
    """Run the suite as the parsed arguments say, print the report; 0 when it passed."""
    plan = KillsPlan(
        requests=args.requests,
        rate=args.rate,
        kill_every=args.kill_every,
        database_restart_at=args.database_restart_at,
        database_down_seconds=args.database_down,
        replica_service=args.replica_service,
        replica_from=args.replica_window[0],
        replica_until=args.replica_window[1],
        session_timeout_ms=args.session_timeout_ms,
        settle_timeout=args.settle_timeout,
        seed=args.seed,
    )
    home = args.home or Path(tempfile.mkdtemp(prefix="crs-chaos-"))
    config = chaos_stack(home, session_timeout_ms=plan.session_timeout_ms)
    try:
        report = await run_kills(config, plan, say=say)
    except BaseException:
        say(f"the run failed; the stack's logs are in {home / 'logs'}")
        raise
    finally:
        if not args.keep:
            await stop_part(config, replica_part(plan.replica_service, "2"))
            await stack_down(config)
    say(report.format())
    if args.keep:
        say(f"stack left running in {home} (KAFKA_BOOTSTRAP_SERVERS={config.bootstrap_servers})")
    elif args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    else:
        say(f"logs in {home / 'logs'}")
    return 0 if report.passed else 1


def main(argv: list[str] | None = None) -> int:
    """``crs chaos kills``: parse ``argv`` (without the command words) and run the suite."""
    from shared.logging import configure_logging

    configure_logging(service="crs", log_format="console", level="WARNING")
    args = build_parser().parse_args(argv)
    return asyncio.run(kills(args))


if __name__ == "__main__":
    raise SystemExit(main())
