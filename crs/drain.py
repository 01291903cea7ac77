"""Draining the local stack before it stops: the local broker keeps its records in memory only.

`crs stack down` first waits until every service has consumed what is waiting for it and
published what its outbox holds, so that stopping loses no request in flight. What is waiting is
read from each running service's own metrics (``crs_consumer_lag`` per group, topic and partition;
``crs_outbox_unpublished``), the same figures Prometheus scrapes.

What a stop loses even after draining is the broker's history: every record on every topic,
dead letters included (`crs dlq list` shows them; look before stopping).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from shared.topics import CONSUMED_TOPICS, dead_letter_topic


@dataclass(frozen=True)
class Backlog:
    """What the running services have not done yet."""

    lag: Mapping[str, int] = field(default_factory=dict)
    """Records not yet consumed, per service."""
    outbox: Mapping[str, int] = field(default_factory=dict)
    """Events committed but not yet published, per service."""
    silent: tuple[str, ...] = ()
    """Services whose metrics did not answer (their backlog is unknown)."""

    @property
    def total(self) -> int:
        return sum(self.lag.values()) + sum(self.outbox.values())

    def describe(self) -> str:
        """``120 records not consumed (validation 80, audit 40), 3 events not published (intake 3)``."""
        parts = []
        lag = {name: count for name, count in self.lag.items() if count}
        outbox = {name: count for name, count in self.outbox.items() if count}
        if lag:
            parts.append(f"{sum(lag.values())} records not consumed ({_per_service(lag)})")
        if outbox:
            parts.append(f"{sum(outbox.values())} events not published ({_per_service(outbox)})")
        if self.silent:
            parts.append(f"no metrics from {', '.join(self.silent)}")
        return ", ".join(parts) or "nothing waiting"


def _per_service(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))


def backlog_of(metrics_text: str) -> tuple[int, int]:
    """(records not consumed, events not published) from one service's ``/metrics`` text."""
    lag = outbox = 0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "crs_consumer_lag":
                lag += max(int(sample.value), 0)
            elif sample.name == "crs_outbox_unpublished":
                outbox += max(int(sample.value), 0)
    return lag, outbox


async def read_backlog(metrics_urls: Mapping[str, str], *, timeout: float = 5.0) -> Backlog:
    """The backlog of each service, from its metrics (services that do not answer are named)."""
    lag: dict[str, int] = {}
    outbox: dict[str, int] = {}
    silent: list[str] = []
    async with httpx.AsyncClient(timeout=timeout) as client:

        async def one(name: str, url: str) -> None:
            try:
                response = await client.get(url)
                response.raise_for_status()
            except httpx.HTTPError:
                silent.append(name)
                return
            lag[name], outbox[name] = backlog_of(response.text)

        await asyncio.gather(*(one(name, url) for name, url in metrics_urls.items()))
    return Backlog(lag, outbox, tuple(sorted(silent)))


async def drain(
    metrics_urls: Mapping[str, str],
    *,
    timeout: float,
    say: Callable[[str], None],
    interval: float = 1.0,
    clock: Callable[[], float] | None = None,
) -> Backlog:
    """Wait until no service has anything waiting, twice in a row, or ``timeout`` has passed.

    Returns the last backlog read: empty when drained. Progress goes to ``say`` (about once a
    second while something is waiting).
    """
    now = clock or asyncio.get_running_loop().time
    deadline = now() + timeout
    settled = 0
    while True:
        backlog = await read_backlog(metrics_urls)
        if backlog.total == 0 and not backlog.silent:
            settled += 1
            if settled >= 2:
                return backlog
        else:
            settled = 0
            say(f"draining: {backlog.describe()}")
        if now() >= deadline:
            return backlog
        await asyncio.sleep(interval)


async def dead_letters_held(bootstrap_servers: str) -> int:
    """How many dead letters the broker holds now (they go with it when it stops)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        existing = await consumer.topics()
        partitions = [
            TopicPartition(topic, partition)
            for topic in (dead_letter_topic(name) for name in CONSUMED_TOPICS)
            if topic in existing
            for partition in consumer.partitions_for_topic(topic) or ()
        ]
        if not partitions:
            return 0
        firsts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        return sum(ends[tp] - firsts[tp] for tp in partitions)
    finally:
        await consumer.stop()
