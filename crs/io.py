"""Talking to the topics as an outside client would: publishing and tailing JSON records.

The `crs` tool and the tests use plain aiokafka here on purpose, not our services' FastStream
machinery: they stand in for the CRM gateway, the ERP and an operator's terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError


class BrokerLost(Exception):
    """The broker stopped answering, or its topics were re-created under a running tail."""


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
    try:
        await client.start()
    except BaseException:
        # A producer that failed to start still holds a client: close it, or Python warns about
        # an unclosed producer on top of the error.
        await client.stop()
        raise
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
    check_after_idle: float | None = None,
) -> AsyncGenerator[TopicRecord, None]:
    """Yield the records of ``topics`` as they arrive, without joining a consumer group.

    Stops after ``idle_timeout`` seconds without a record when it is given; runs forever otherwise.
    With ``check_after_idle``, after that many seconds without a record it asks the broker for the
    topics' ends and raises :class:`BrokerLost` if the broker does not answer, or if a topic is now
    shorter than what was read (it was re-created: a restarted local broker starts empty).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    try:
        await consumer.start()
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(
                consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
            )
        ]
    except (KafkaError, LookupError) as error:
        await _stop(consumer)
        raise BrokerLost(str(error) or type(error).__name__) from error
    except BaseException:
        await _stop(consumer)
        raise
    try:
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        read_up_to: dict[TopicPartition, int] = {}
        idle = quiet = 0.0
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=250)
            except KafkaError as error:
                raise BrokerLost(str(error) or type(error).__name__) from error
            if not batch:
                idle += 0.25
                quiet += 0.25
                if idle_timeout is not None and idle >= idle_timeout:
                    return
                if check_after_idle is not None and quiet >= check_after_idle:
                    quiet = 0.0
                    await _check_still_there(consumer, partitions, read_up_to)
                continue
            idle = quiet = 0.0
            for tp, records in batch.items():
                for record in records:
                    read_up_to[tp] = record.offset + 1
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
        await _stop(consumer)


async def _stop(consumer: AIOKafkaConsumer, timeout: float = 5.0) -> None:
    """Stop a consumer, bounded; errors of its own tasks on the way out are not ours.

    aiokafka's stop cancels its fetch task and awaits it; after a lost connection that lets a
    CancelledError out of ``stop()`` although nobody cancelled the caller.
    """
    stopping = asyncio.ensure_future(consumer.stop())
    await asyncio.wait({stopping}, timeout=timeout)
    if stopping.done() and not stopping.cancelled():
        stopping.exception()  # retrieved, so asyncio does not report it
    elif not stopping.done():
        stopping.cancel()


async def _check_still_there(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], read_up_to: dict[TopicPartition, int]
) -> None:
    # A task of its own, waited for with a limit: aiokafka retries inside end_offsets, and a
    # timeout cancelling it from within ends as a bare CancelledError instead of a TimeoutError.
    asking = asyncio.ensure_future(consumer.end_offsets(list(partitions)))
    done, _ = await asyncio.wait({asking}, timeout=3.0)
    if not done:
        asking.cancel()
        with contextlib.suppress(asyncio.CancelledError, KafkaError):
            await asking
        raise BrokerLost("it does not answer")
    try:
        ends = asking.result()
    except KafkaError as error:
        raise BrokerLost("it does not answer") from error
    if any(ends.get(tp, 0) < position for tp, position in read_up_to.items()):
        raise BrokerLost("its topics were re-created")


class Follower:
    """Reads topics from their current end: enter it before publishing, then read what follows.

    Entering it fixes the positions, so nothing published after that is missed.
    """

    def __init__(self, bootstrap_servers: str, topics: Sequence[str]) -> None:
        self._topics = topics
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
        )

    async def __aenter__(self) -> Follower:
        try:
            await self._consumer.start()
            partitions = [
                TopicPartition(topic, partition)
                for topic in self._topics
                for partition in sorted(
                    self._consumer.partitions_for_topic(topic) or await _partitions(self._consumer, topic)
                )
            ]
            self._consumer.assign(partitions)
            await self._consumer.seek_to_end(*partitions)
            for tp in partitions:
                await self._consumer.position(tp)  # resolves the end offset now, not at the first read
        except BaseException:
            await self._consumer.stop()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def read(self, timeout: float) -> list[TopicRecord]:
        """What arrived within ``timeout`` seconds (possibly nothing)."""
        batch = await self._consumer.getmany(timeout_ms=int(timeout * 1000))
        return [
            TopicRecord(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key.decode(errors="replace") if record.key is not None else None,
                value=_decode(record.value),
                raw=record.value or b"",
                headers={name: value.decode(errors="replace") for name, value in record.headers or ()},
                timestamp_ms=record.timestamp,
            )
            for records in batch.values()
            for record in records
        ]


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(40):
        await consumer.topics()  # refreshes metadata
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await asyncio.sleep(0.25)
    raise LookupError(f"topic {topic} does not exist")
