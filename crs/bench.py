"""`crs bench`: throughput and latency of the running stack, beside a bare aiokafka relay.

The system's path from ``crm.requests.v1`` to ``erp.resolutions.v1`` is four hops (intake,
validation, routing, resolution each consume and publish). The baseline pushes the same number of
messages of the same size through four bare aiokafka consume-and-forward relays on the same
broker, so the ratio shows what our guarantees (a database transaction, an outbox and an offset
commit per message) cost on top of the broker itself.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from crs.io import producer, publish_many
from shared.identity import crm_request_id
from shared.kafka import ensure_topics
from shared.topics import CONTRACTS, CRM_REQUESTS, CUSTOMERS, ERP_RESOLUTIONS, INVOICES

HOPS = 4
STAMP = "2026-11-01T00:00:00Z"


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


async def _positioned_consumer(bootstrap_servers: str, topic: str) -> AIOKafkaConsumer:
    """A consumer at the current end of ``topic``, so only what comes next is read."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)
    return consumer


async def _timed_run(
    bootstrap_servers: str,
    *,
    source_topic: str,
    sink_topic: str,
    messages: list[tuple[str, str, Any]],
    sink_key: Callable[[str], str],
    timeout: float,
    progress: Callable[[int, int], None],
) -> RunFigures:
    sink = await _positioned_consumer(bootstrap_servers, sink_topic)
    expected = {sink_key(key): key for _, key, _ in messages}
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    try:
        started = time.perf_counter()
        async with producer(bootstrap_servers) as client:
            pending = []
            for _, key, value in messages:
                sent_at[sink_key(key)] = time.perf_counter()
                pending.append(await client.send(source_topic, json.dumps(value).encode(), key=key.encode()))
            await asyncio.gather(*pending)
        deadline = started + timeout
        last = started
        while len(latencies) < len(messages) and time.perf_counter() < deadline:
            batch = await sink.getmany(timeout_ms=500)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    key = record.key.decode() if record.key else ""
                    if key in expected and key in sent_at:
                        latencies.append((now - sent_at.pop(key)) * 1000)
                        last = now
            progress(len(latencies), len(messages))
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


async def run_bench(
    *,
    bootstrap_servers: str,
    count: int,
    reference_consumed: Callable[[], Awaitable[None]],
    timeout: float = 1800.0,
    say: Callable[[str], None] = print,
) -> tuple[RunFigures, RunFigures]:
    """Run the system and the bare relay with ``count`` messages each and return both figures.

    ``reference_consumed`` returns once the services have taken in the published reference data.
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

    say(f"system: {count} disputes through intake, validation, routing and resolution")
    system = await _timed_run(
        bootstrap_servers,
        source_topic=CRM_REQUESTS,
        sink_topic=ERP_RESOLUTIONS,
        messages=requests,
        sink_key=crm_request_id,
        timeout=timeout,
        progress=progress("resolved"),
    )

    say(f"bare relay: {count} messages through {HOPS} aiokafka consume-and-forward hops")
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
        relay = await _timed_run(
            bootstrap_servers,
            source_topic=topics[0],
            sink_topic=topics[-1],
            messages=[(topics[0], key, value) for _, key, value in requests],
            sink_key=lambda key: key,
            timeout=timeout,
            progress=progress("relayed"),
        )
    finally:
        for task in relays:
            task.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
    return system, relay


def report(system: RunFigures, relay: RunFigures, count: int) -> str:
    """The figures as a table, with the ratio of the system to the bare relay."""

    def row(label: str, figures: RunFigures) -> str:
        return (
            f"{label:<12} {figures.count:>6}/{count:<6} {figures.throughput:>10.1f} "
            f"{figures.percentile(0.50):>9.1f} {figures.percentile(0.95):>9.1f} "
            f"{figures.percentile(0.99):>9.1f} {figures.maximum:>9.1f}"
        )

    def ratio(ours: float, theirs: float) -> str:
        return f"{ours / theirs:.3f}" if theirs else "n/a"

    lines = [
        f"{'':<12} {'delivered':>13} {'req/s':>10} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9}",
        row("system", system),
        row("bare relay", relay),
        (
            f"ratio system/relay: throughput {ratio(system.throughput, relay.throughput)}, "
            f"p50 latency {ratio(system.percentile(0.5), relay.percentile(0.5))}, "
            f"p99 latency {ratio(system.percentile(0.99), relay.percentile(0.99))}"
        ),
    ]
    if system.latencies_ms:
        lines.append(f"system mean latency {statistics.fmean(system.latencies_ms):.1f} ms")
    return "\n".join(lines)
