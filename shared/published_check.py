"""Which outbox entries are on their topics already: read back before an entry is sent again.

A publisher that dies between the broker's acknowledgement and marking its outbox entries leaves
entries that went out but look unpublished. Whoever publishes them later (the redelivered
message, the sweeper) asks this first: it reads the entries' topics from a little before the
entries were committed to their current end, looking for the entries' event ids (the
``x-event-id`` header every outbox record carries), and those found are only marked. Reading
back is costly, so it is done only for entries that may have gone out (not for an event just
committed), which after a crash means a few batches' worth of records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.delivery import OutgoingMessage

log = structlog.get_logger(__name__)

EVENT_ID_HEADER = "x-event-id"


class PublishedCheck:
    """Reads the topics back to tell which outbox entries are on them already."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        connection: Mapping[str, Any] | None = None,
        margin: timedelta = timedelta(seconds=60),
        max_records: int = 500_000,
        timeout_seconds: float = 30.0,
    ) -> None:
        """``connection``: further aiokafka options (security: the same as the service's broker).

        ``margin``: how far before an entry's commit to start reading (clocks of other hosts).
        """
        self._bootstrap_servers = bootstrap_servers
        self._connection = dict(connection or {})
        self._margin = margin
        self._max_records = max_records
        self._timeout_seconds = timeout_seconds
        self._lock = asyncio.Lock()  # one read-back at a time per process

    async def __call__(self, messages: Sequence[OutgoingMessage]) -> set[str]:
        """The ids among ``messages`` found on their topics; raises when it cannot tell."""
        if not messages:
            return set()
        async with self._lock, asyncio.timeout(self._timeout_seconds):
            return await self._read_back(messages)

    async def _read_back(self, messages: Sequence[OutgoingMessage]) -> set[str]:
        wanted = {message.message_id for message in messages}
        committed = [message.committed_at for message in messages if message.committed_at is not None]
        since_ms = (
            int((min(committed) - self._margin).timestamp() * 1000)
            if len(committed) == len(messages)
            else None
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            **self._connection,
        )
        await consumer.start()
        try:
            partitions = await _partitions(consumer, sorted({message.topic for message in messages}))
            if not partitions:
                return set()
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            remaining = await _seek(consumer, partitions, ends, since_ms)
            found: set[str] = set()
            read = 0
            while remaining and found != wanted and read < self._max_records:
                batch = await consumer.getmany(*remaining, timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        read += 1
                        event_id = (
                            dict(record.headers or ()).get(EVENT_ID_HEADER, b"").decode(errors="replace")
                        )
                        if event_id in wanted:
                            found.add(event_id)
                remaining = [tp for tp in remaining if await consumer.position(tp) < ends[tp]]
            if remaining and found != wanted:
                raise TimeoutError(
                    f"read {read} records without reaching the end of {len(remaining)} partitions"
                )
            log.info("outbox.read_back", entries=len(wanted), found=len(found), records_read=read)
            return found
        finally:
            await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    partitions: list[TopicPartition] = []
    for topic in topics:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            await consumer.topics()  # refreshes the metadata
            numbers = consumer.partitions_for_topic(topic) or set()
        partitions += [TopicPartition(topic, number) for number in sorted(numbers)]
    return partitions


async def _seek(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    ends: dict[TopicPartition, int],
    since_ms: int | None,
) -> list[TopicPartition]:
    """Position each partition at its first record since ``since_ms``; those with records to read."""
    if since_ms is None:
        await consumer.seek_to_beginning(*partitions)
    else:
        starts = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        for tp in partitions:
            start = starts.get(tp)
            # Nothing as recent (some brokers answer offset 0 with timestamp -1 for that): skip it.
            if start is None or start.timestamp < since_ms:
                consumer.seek(tp, ends[tp])
            else:
                consumer.seek(tp, start.offset)
    return [tp for tp in partitions if await consumer.position(tp) < ends[tp]]
