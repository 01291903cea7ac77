"""`crs bench`: throughput, latency and cost per request of the running stack, beside a bare relay.

The system's path from ``crm.requests.v1`` to ``erp.resolutions.v1`` is four hops (intake,
validation, routing, resolution each consume and publish). The baseline pushes the same number of
messages of the same size through four bare aiokafka consume-and-forward relays on the same
broker, so the ratio shows what our guarantees (a database transaction, an outbox and an offset
commit per batch) cost on top of the broker itself.

Beside requests per second and latency it reads what a request costs:

- **statements per request**: every command the services' MongoDB clients sent while the run's
  requests went through (``crs_db_commands_total`` of each service's ``/metrics``, read before the
  requests are sent and after every service has consumed everything they caused, so audit's and
  the workspace's work counts too), health-check pings left out, divided by the requests;
- **database CPU per request**: CPU time of the local database server processes over the same span;
- **each service's memory**: resident set size before, after, and the peak sampled during the run,
  and how much the second half's peak exceeds the first half's (growth past the warm-up).

Requests are sent all at once (a burst: the latencies then measure queueing) or, with a rate, at
a steady pace (the latencies then measure one request's way through a busy system).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from crs.io import producer, publish_many
from shared.identity import crm_request_id
from shared.kafka import ensure_topics
from shared.settings import REQUEST_FETCH_MAX_WAIT_MS
from shared.topics import CONTRACTS, CRM_REQUESTS, CUSTOMERS, ERP_RESOLUTIONS, INVOICES

HOPS = 4
STAMP = "2026-11-01T00:00:00Z"
NOT_STATEMENTS = frozenset({"ping", "hello", "isMaster", "ismaster", "endSessions", "buildInfo"})
"""Commands that are no work a request causes: health checks and the driver's housekeeping."""
MEMORY_SAMPLE_SECONDS = 0.5
MIB = 1024 * 1024


@dataclass(frozen=True)
class RunFigures:
    """Throughput and latency of one run."""

    count: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    @property
    def maximum(self) -> float:
        return max(self.latencies_ms, default=float("nan"))


@dataclass(frozen=True)
class Processes:
    """The local stack's processes: each service's, and the database servers' (by part name)."""

    services: Mapping[str, int] = field(default_factory=dict)
    databases: Mapping[str, int] = field(default_factory=dict)


@dataclass
class Memory:
    """A service's resident set size (bytes) when the requests were sent, at the end, and sampled
    at a steady interval in between (:data:`MEMORY_SAMPLE_SECONDS`)."""

    start: int
    end: int = 0
    samples: list[int] = field(default_factory=list)

    def sample(self, rss: int) -> None:
        self.samples.append(rss)

    @property
    def peak(self) -> int:
        return max(self.samples, default=self.start)

    @property
    def later_growth(self) -> int:
        """The peak of the run's second half over the peak of its first half.

        The first minute of a run fills buffers and caches: a service's memory rises and levels
        off. What grows with the data handled goes on rising, and shows here.
        """
        half = len(self.samples) // 2
        if half == 0:
            return 0
        return max(self.samples[half:]) - max(self.samples[:half])

    def figures(self) -> dict[str, int]:
        """The figures, for ``--output``: start, end, peak and the later growth, in bytes."""
        return {"start": self.start, "end": self.end, "peak": self.peak, "later_growth": self.later_growth}


@dataclass(frozen=True)
class Cost:
    """What the run's requests cost the services and the database servers."""

    statements: Mapping[str, Mapping[str, int]]
    """Commands sent, per service and command name (health-check pings left out)."""
    database_cpu_seconds: Mapping[str, float]
    """CPU time of each database server process (empty when its process is not visible here)."""
    service_cpu_seconds: Mapping[str, float]
    memory: Mapping[str, Memory]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    catch_up_seconds: float = 0.0
    """From the last resolution to every service having consumed what the requests caused: how
    far the views (audit's trail, the console) were behind when the request path was through."""

    def statements_of(self, service: str) -> int:
        return sum(self.statements.get(service, {}).values())

    @property
    def total_statements(self) -> int:
        return sum(self.statements_of(service) for service in self.statements)


def bench_world(run_id: str, count: int) -> tuple[list[tuple[str, str, Any]], list[tuple[str, str, Any]]]:
    """A customer with ``count`` invoices, and one dispute per invoice that resolves to a credit memo."""
    customer_id = f"BENCH-{run_id}"
    reference: list[tuple[str, str, Any]] = [
        (
            CUSTOMERS,
            customer_id,
            {
                "customer_id": customer_id,
                "name": "Benchmark Industries",
                "status": "active",
                "kyc_status": "verified",
                "kyc_expires_on": "2030-12-31",
                "credit_limit": {"amount": "1000000.00", "currency": "USD"},
                "tier": "standard",
                "contacts": [{"name": "Bench", "email": f"bench-{run_id}@bench.example"}],
                "updated_at": STAMP,
            },
        )
    ]
    # Resolution reprices each invoice against this contract (500.00 a unit, invoiced at 600.00).
    contract_id = f"CTR-BENCH-{run_id}"
    reference.append(
        (
            CONTRACTS,
            contract_id,
            {
                "contract_id": contract_id,
                "customer_id": customer_id,
                "valid_from": "2026-01-01",
                "currency": "USD",
                "prices": [{"sku": "SKU-CLD-100", "unit_price": "500.00"}],
                "updated_at": STAMP,
            },
        )
    )
    requests: list[tuple[str, str, Any]] = []
    for number in range(count):
        invoice_id = f"INV-BENCH-{run_id}-{number:06d}"
        reference.append(
            (
                INVOICES,
                invoice_id,
                {
                    "invoice_id": invoice_id,
                    "customer_id": customer_id,
                    "contract_id": contract_id,
                    "issued_on": "2026-10-01",
                    "currency": "USD",
                    "lines": [{"sku": "SKU-CLD-100", "quantity": "2", "unit_price": "600.00"}],
                    "total": {"amount": "1200.00", "currency": "USD"},
                    "open_amount": {"amount": "1200.00", "currency": "USD"},
                    "status": "open",
                    "updated_at": STAMP,
                },
            )
        )
        case_id = f"BENCH-{run_id}-{number:06d}"
        requests.append(
            (
                CRM_REQUESTS,
                case_id,
                {
                    "case_id": case_id,
                    "customer_id": customer_id,
                    "type": "billing_dispute",
                    "subject": f"Invoice {invoice_id} above contract price",
                    "invoice_ids": [invoice_id],
                    "expected_amount": {"amount": "1000.00", "currency": "USD"},
                    "submitted_at": STAMP,
                },
            )
        )
    return reference, requests


SINK_FETCH_MAX_WAIT_MS = 10
"""The fetch wait of the reader that times each request's arrival on its sink topic."""


async def _positioned_consumer(bootstrap_servers: str, topic: str) -> AIOKafkaConsumer:
    """A consumer at the current end of ``topic``, so only what comes next is read."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        # The measuring reader must add as little as it can: the local broker holds a fetch for
        # much of its wait even when records arrive, which would count as the system's latency.
        fetch_max_wait_ms=SINK_FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)
    return consumer


async def _send(
    client: AIOKafkaProducer,
    topic: str,
    *,
    messages: Sequence[tuple[str, str, Any]],
    sent_at: dict[str, float],
    sink_key: Callable[[str], str],
    rate: float | None,
) -> None:
    """All at once, or one every ``1 / rate`` seconds (on a schedule, so a late send does not drift)."""
    pending = []
    started = time.perf_counter()
    for number, (_, key, value) in enumerate(messages):
        if rate is not None:
            delay = started + number / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        sent_at[sink_key(key)] = time.perf_counter()
        pending.append(await client.send(topic, json.dumps(value).encode(), key=key.encode()))
    await asyncio.gather(*pending)


async def _timed_run(
    bootstrap_servers: str,
    *,
    source_topic: str,
    sink_topic: str,
    messages: list[tuple[str, str, Any]],
    sink_key: Callable[[str], str],
    timeout: float,
    progress: Callable[[int, int], None],
    rate: float | None = None,
) -> RunFigures:
    sink = await _positioned_consumer(bootstrap_servers, sink_topic)
    expected = {sink_key(key) for _, key, _ in messages}
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    try:
        started = time.perf_counter()
        async with producer(bootstrap_servers) as client:
            sending = asyncio.create_task(
                _send(client, source_topic, messages=messages, sent_at=sent_at, sink_key=sink_key, rate=rate)
            )
            deadline = started + timeout
            last = started
            while len(latencies) < len(messages) and time.perf_counter() < deadline:
                batch = await sink.getmany(timeout_ms=200)
                now = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        key = record.key.decode() if record.key else ""
                        if key in expected and key in sent_at:
                            latencies.append((now - sent_at.pop(key)) * 1000)
                            last = now
                progress(len(latencies), len(messages))
                if sending.done() and sending.exception() is not None:
                    raise sending.exception()  # type: ignore[misc]
            await sending
    finally:
        await sink.stop()
    return RunFigures(count=len(latencies), seconds=last - started, latencies_ms=latencies)


async def _relay(bootstrap_servers: str, source: str, target: str, group: str, ready: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        session_timeout_ms=6_000,
        enable_auto_commit=False,
        # The same wait as the services' consumers of a request's hops: the relay is their yardstick.
        fetch_max_wait_ms=REQUEST_FETCH_MAX_WAIT_MS,
    )
    forward = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await consumer.start()
    await forward.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            if consumer.assignment():
                ready.set()
            for records in batch.values():
                for record in records:
                    await forward.send_and_wait(target, record.value, key=record.key)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
        await forward.stop()


# --------------------------------------------------------------------------------------------
# What a run costs: statements (the services' metrics), CPU and memory (their processes)


def statements_of(metrics_text: str) -> dict[str, int]:
    """Commands a service sent, by name, from its ``/metrics`` text (pings and handshakes left out)."""
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "crs_db_commands_total":
                command = sample.labels.get("command", "")
                if command not in NOT_STATEMENTS:
                    counts[command] = counts.get(command, 0) + int(sample.value)
    return counts


async def read_statements(metrics_urls: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """Each service's command counts now (a service that does not answer counts nothing)."""
    async with httpx.AsyncClient(timeout=10.0) as client:

        async def one(url: str) -> dict[str, int]:
            try:
                response = await client.get(url)
                response.raise_for_status()
            except httpx.HTTPError:
                return {}
            return statements_of(response.text)

        names = list(metrics_urls)
        counts = await asyncio.gather(*(one(metrics_urls[name]) for name in names))
    return dict(zip(names, counts, strict=True))


def _difference(
    after: Mapping[str, Mapping[str, int]], before: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    return {
        service: {
            command: count - before.get(service, {}).get(command, 0)
            for command, count in commands.items()
            if count - before.get(service, {}).get(command, 0)
        }
        for service, commands in after.items()
    }


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its children (a console script may run it in a child)."""
    try:
        process = psutil.Process(pid)
        total = sum(process.cpu_times()[:2])
        for child in process.children(recursive=True):
            total += sum(child.cpu_times()[:2])
        return float(total)
    except psutil.Error:
        return float("nan")


def _rss(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


class CostMeter:
    """Reads statements, CPU and memory before a run, samples memory during it, and again after."""

    def __init__(self, metrics_urls: Mapping[str, str], processes: Processes) -> None:
        self._metrics_urls = metrics_urls
        self._processes = processes
        self._statements: dict[str, dict[str, int]] = {}
        self._database_cpu: dict[str, float] = {}
        self._service_cpu: dict[str, float] = {}
        self._memory: dict[str, Memory] = {}
        self._load: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._load = os.getloadavg()
        self._statements = await read_statements(self._metrics_urls)
        self._database_cpu = {part: _cpu_seconds(pid) for part, pid in self._processes.databases.items()}
        self._service_cpu = {name: _cpu_seconds(pid) for name, pid in self._processes.services.items()}
        self._memory = {name: Memory(start=_rss(pid)) for name, pid in self._processes.services.items()}
        for memory in self._memory.values():
            memory.sample(memory.start)
        self._sampler = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(MEMORY_SAMPLE_SECONDS)
            for name, pid in self._processes.services.items():
                self._memory[name].sample(_rss(pid))

    async def stop(self) -> Cost:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
        statements = _difference(await read_statements(self._metrics_urls), self._statements)
        for name, pid in self._processes.services.items():
            self._memory[name].end = _rss(pid)
            self._memory[name].sample(self._memory[name].end)
        return Cost(
            statements=statements,
            database_cpu_seconds={
                part: _cpu_seconds(pid) - self._database_cpu[part]
                for part, pid in self._processes.databases.items()
            },
            service_cpu_seconds={
                name: _cpu_seconds(pid) - self._service_cpu[name]
                for name, pid in self._processes.services.items()
            },
            memory=self._memory,
            load_before=self._load,
            load_after=os.getloadavg(),
        )


# --------------------------------------------------------------------------------------------
# The run


@dataclass(frozen=True)
class BenchResult:
    """Everything one ``crs bench`` measured."""

    count: int
    rate: float | None
    system: RunFigures
    relay: RunFigures | None
    cost: Cost
    settings: Mapping[str, str] = field(default_factory=dict)
    """How the stack was set up (database servers, batch size, ...), as printed."""


async def run_bench(
    *,
    bootstrap_servers: str,
    count: int,
    reference_consumed: Callable[[], Awaitable[None]],
    everything_consumed: Callable[[], Awaitable[None]],
    metrics_urls: Mapping[str, str],
    processes: Processes,
    rate: float | None = None,
    relay: bool = True,
    timeout: float = 1800.0,
    say: Callable[[str], None] = print,
) -> tuple[RunFigures, RunFigures | None, Cost]:
    """Run the system (and the bare relay) with ``count`` messages each; the figures and the cost.

    ``reference_consumed`` returns once the services have taken in the published reference data;
    ``everything_consumed`` once they have consumed everything the requests caused.
    """
    run_id = uuid.uuid4().hex[:8].upper()
    reference, requests = bench_world(run_id, count)

    def progress(label: str) -> Callable[[int, int], None]:
        shown = [-1]

        def show(done: int, total: int) -> None:
            step = max(total // 10, 1)
            if done // step != shown[0] // step or done == total:
                shown[0] = done
                say(f"  {label}: {done}/{total}")

        return show

    say(f"bench {run_id}: publishing 1 customer and {count} invoices")
    async with producer(bootstrap_servers) as client:
        await publish_many(client, reference)
    ingest_started = time.perf_counter()
    # Validation and resolution each keep their own view of the invoices: wait until every
    # service has consumed them (its consumer groups have caught up), not by reading their stores.
    await reference_consumed()
    say(f"  the services took in {count} invoices in {time.perf_counter() - ingest_started:.1f}s")

    pace = f" at {rate:g}/s" if rate else " at once"
    say(f"system: {count} disputes{pace} through intake, validation, routing and resolution")
    meter = CostMeter(metrics_urls, processes)
    await meter.start()
    system = await _timed_run(
        bootstrap_servers,
        source_topic=CRM_REQUESTS,
        sink_topic=ERP_RESOLUTIONS,
        messages=requests,
        sink_key=crm_request_id,
        timeout=timeout,
        progress=progress("resolved"),
        rate=rate,
    )
    say("  waiting until every service has consumed what the requests caused (audit, workspace, ...)")
    resolved_at = time.perf_counter()
    await everything_consumed()
    cost = replace(await meter.stop(), catch_up_seconds=time.perf_counter() - resolved_at)

    if not relay:
        return system, None, cost
    say(f"bare relay: {count} messages{pace} through {HOPS} aiokafka consume-and-forward hops")
    topics = [f"bench.relay.{run_id}.{hop}" for hop in range(HOPS + 1)]
    await ensure_topics(bootstrap_servers, topics, partitions=4)
    readiness = [asyncio.Event() for _ in range(HOPS)]
    relays = [
        asyncio.create_task(
            _relay(
                bootstrap_servers, topics[hop], topics[hop + 1], f"bench-relay-{run_id}-{hop}", readiness[hop]
            )
        )
        for hop in range(HOPS)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in readiness)), 60)
        relayed = await _timed_run(
            bootstrap_servers,
            source_topic=topics[0],
            sink_topic=topics[-1],
            messages=[(topics[0], key, value) for _, key, value in requests],
            sink_key=lambda key: key,
            timeout=timeout,
            progress=progress("relayed"),
            rate=rate,
        )
    finally:
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
    return system, relayed, cost


# --------------------------------------------------------------------------------------------
# The report


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.3f}" if theirs else "n/a"


def report(result: BenchResult) -> str:
    """The figures as text: speed beside the relay, cost per request, memory, and the goals."""
    count, system, relay, cost = result.count, result.system, result.relay, result.cost

    def row(label: str, figures: RunFigures) -> str:
        return (
            f"{label:<12} {figures.count:>6}/{count:<6} {figures.throughput:>10.1f} "
            f"{figures.percentile(0.50):>9.1f} {figures.percentile(0.95):>9.1f} "
            f"{figures.percentile(0.99):>9.1f} {figures.maximum:>9.1f}"
        )

    delivered = max(system.count, 1)
    lines = [
        f"{'':<12} {'delivered':>13} {'req/s':>10} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9}",
        row("system", system),
    ]
    if relay is not None:
        lines += [
            row("bare relay", relay),
            (
                f"ratio system/relay: throughput {_ratio(system.throughput, relay.throughput)}, "
                f"p50 latency {_ratio(system.percentile(0.5), relay.percentile(0.5))}, "
                f"p99 latency {_ratio(system.percentile(0.99), relay.percentile(0.99))}"
            ),
        ]
    if system.latencies_ms:
        lines.append(f"system mean latency {statistics.fmean(system.latencies_ms):.1f} ms")
    lines.append(
        f"every service had consumed what the requests caused {cost.catch_up_seconds:.1f} s after "
        "the last resolution (the views catch up last)"
    )
    lines += ["", f"statements per request: {cost.total_statements / delivered:.2f}"]
    for service in sorted(cost.statements, key=lambda name: -cost.statements_of(name)):
        commands = cost.statements[service]
        top = ", ".join(
            f"{name} {number / delivered:.2f}"
            for name, number in sorted(commands.items(), key=lambda item: -item[1])[:6]
        )
        lines.append(f"  {service:<11} {cost.statements_of(service) / delivered:>6.2f}   {top}")
    database_cpu = sum(seconds for seconds in cost.database_cpu_seconds.values() if not math.isnan(seconds))
    if cost.database_cpu_seconds:
        per_server = ", ".join(
            f"{part} {seconds:.1f} s" for part, seconds in sorted(cost.database_cpu_seconds.items())
        )
        lines.append(
            f"database CPU per request: {database_cpu / delivered * 1000:.2f} ms "
            f"({database_cpu:.1f} s: {per_server})"
        )
    if cost.service_cpu_seconds:
        lines.append(
            "service CPU per request (ms): "
            + ", ".join(
                f"{name} {seconds / delivered * 1000:.2f}"
                for name, seconds in cost.service_cpu_seconds.items()
            )
        )
    if cost.memory:
        lines += [
            "",
            f"{'memory (MiB)':<14} {'start':>7} {'end':>7} {'peak':>7} {'growth':>7} {'later':>7}",
        ]
        for name, memory in cost.memory.items():
            lines.append(
                f"  {name:<12} {memory.start / MIB:>7.1f} {memory.end / MIB:>7.1f} {memory.peak / MIB:>7.1f} "
                f"{(memory.peak - memory.start) / MIB:>+7.1f} {memory.later_growth / MIB:>+7.1f}"
            )
        lines.append("  (growth: peak over start; later: the second half's peak over the first half's)")
    lines += [
        "",
        "load average before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
            *cost.load_before, *cost.load_after
        ),
    ]
    if result.settings:
        lines.append("stack: " + ", ".join(f"{name} {value}" for name, value in result.settings.items()))
    lines += ["", *goals(result)]
    return "\n".join(lines)


def goals(result: BenchResult) -> list[str]:
    """Issue 13's goals, each with what this run measured (a goal this run does not measure says so)."""
    system, cost, count = result.system, result.cost, result.count
    delivered = max(system.count, 1)
    statements = cost.total_statements / delivered
    batch = result.settings.get("batch size", "the services' own")
    growth = max(
        ((memory.peak - memory.start) / memory.start for memory in cost.memory.values() if memory.start),
        default=float("nan"),
    )
    later = max((memory.later_growth for memory in cost.memory.values()), default=0)
    lines = ["goals (issue 13):"]
    lines.append(f"  statements per request <= 8 at a batch of 50: {statements:.2f} (batch size {batch})")
    if result.rate is None:
        lines.append(f"  >= 150 requests/s at 10,000: {system.throughput:.1f} at {count:,}")
    else:
        lines.append(f"  p99 under 1 s at 50/s: {system.percentile(0.99) / 1000:.3f} s at {result.rate:g}/s")
    if result.relay is not None:
        lines.append(f"  ratio to the bare relay: {_ratio(system.throughput, result.relay.throughput)}")
    lines.append(
        f"  memory flat: largest growth of a service in the run's second half {later / MIB:+.1f} MiB "
        f"(from the start, with the first minute's buffers: {growth:+.0%})"
    )
    return lines


def as_json(result: BenchResult) -> dict[str, Any]:
    """The figures as JSON (``crs bench --output``), for scripts that collect runs."""

    def figures(run: RunFigures | None) -> dict[str, Any] | None:
        if run is None:
            return None
        return {
            "delivered": run.count,
            "seconds": run.seconds,
            "requests_per_second": run.throughput,
            "p50_ms": run.percentile(0.5),
            "p95_ms": run.percentile(0.95),
            "p99_ms": run.percentile(0.99),
            "max_ms": run.maximum,
        }

    cost = result.cost
    delivered = max(result.system.count, 1)
    return {
        "count": result.count,
        "rate": result.rate,
        "settings": dict(result.settings),
        "system": figures(result.system),
        "relay": figures(result.relay),
        "statements_per_request": cost.total_statements / delivered,
        "statements": {service: dict(commands) for service, commands in cost.statements.items()},
        "database_cpu_seconds": dict(cost.database_cpu_seconds),
        "service_cpu_seconds": dict(cost.service_cpu_seconds),
        "memory_bytes": {name: memory.figures() for name, memory in cost.memory.items()},
        "load_before": list(cost.load_before),
        "load_after": list(cost.load_after),
        "catch_up_seconds": cost.catch_up_seconds,
    }
