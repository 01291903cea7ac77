"""Talking to the topics as an outside client would: publishing and tailing JSON records.

The `crs` tool and the tests use plain aiokafka here on purpose, not our services' FastStream
machinery: they stand in for the CRM gateway, the ERP and an operator's terminal.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


@dataclass(frozen=True)
class TopicRecord:
    """A record read from a topic, its value decoded when it is JSON."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: Any
    raw: bytes
    headers: dict[str, str]
    timestamp_ms: int


@asynccontextmanager
async def producer(bootstrap_servers: str) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer with the same durability our services use (acks=all)."""
    client = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def publish_json(client: AIOKafkaProducer, topic: str, key: str, value: Any) -> None:
    """Publish one JSON value and wait for the broker's acknowledgement."""
    await client.send_and_wait(topic, json.dumps(value).encode(), key=key.encode())


async def publish_many(client: AIOKafkaProducer, records: Iterable[tuple[str, str, Any]]) -> int:
    """Publish (topic, key, value) records, pipelined, and wait for every acknowledgement."""
    pending = [
        await client.send(topic, json.dumps(value).encode(), key=key.encode())
        for topic, key, value in records
    ]
    await asyncio.gather(*pending)
    return len(pending)


def _decode(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, too deep, a number too long
        return raw.decode("utf-8", errors="replace")


async def tail(
    bootstrap_servers: str,
    topics: Sequence[str],
    *,
    from_beginning: bool = True,
    idle_timeout: float | None = None,
) -> AsyncGenerator[TopicRecord, None]:
    """Yield the records of ``topics`` as they arrive, without joining a consumer group.

    Stops after ``idle_timeout`` seconds without a record when it is given; runs forever otherwise.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(
                consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
            )
        ]
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        idle = 0.0
        while True:
            batch = await consumer.getmany(timeout_ms=250)
            if not batch:
                idle += 0.25
                if idle_timeout is not None and idle >= idle_timeout:
                    return
                continue
            idle = 0.0
            for records in batch.values():
                for record in records:
                    yield TopicRecord(
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        key=record.key.decode(errors="replace") if record.key is not None else None,
                        value=_decode(record.value),
                        raw=record.value or b"",
                        headers={
                            name: value.decode(errors="replace") for name, value in record.headers or ()
                        },
                        timestamp_ms=record.timestamp,
                    )
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(40):
        await consumer.topics()  # refreshes metadata
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await asyncio.sleep(0.25)
    raise LookupError(f"topic {topic} does not exist")
