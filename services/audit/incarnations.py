"""Noticing that a topic audit reads was deleted and created again, and reading it from its start.

A topic created again (the local broker forgets every topic when it restarts; in production a
topic re-created by hand or a move to another cluster) is a new topic under the old name: its
records are numbered from 0 again. Two things would lose them:

- the idempotency key: a record at a reused offset must not count as the old record at that
  offset. Audit's key carries the record's fingerprint (:func:`services.audit.chain.record_fingerprint`),
  so a new record is recorded and a redelivered one is not;
- the consumer's position: a running consumer keeps reading the new topic from the offset it had
  reached in the old one, so the new records below it would never be fetched.

This watcher covers the second: it asks the broker for the ids of audit's topics every few seconds
(Kafka topic ids: every incarnation of a topic has its own) and, when one changed, moves this
replica's consumer back to the start of that topic's partitions. What it reads again that was
already recorded is dropped by the idempotency key. A broker that gives no topic ids (Kafka before
2.8) disables the watcher; the fingerprint still records a re-created topic read after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog

from shared.kafka import topic_ids

log = structlog.get_logger(__name__)

ConsumerOf = Callable[[], Any]
"""The aiokafka consumer behind audit's subscriber now (None while it is not running)."""


class TopicIncarnations:
    """The id of each topic audit reads as last seen, and what to do when one changes."""

    def __init__(self, open_admin: Callable[[], Any], topics: Sequence[str], consumer_of: ConsumerOf) -> None:
        self._open_admin = open_admin
        self._admin: Any = None
        self._topics = list(topics)
        self._consumer_of = consumer_of
        self._seen: dict[str, str | None] = {}
        self._supported = True

    async def start(self) -> None:
        """Connect (aiokafka clients are made inside the event loop) and remember the ids."""
        self._admin = self._open_admin()
        await self._admin.start()
        await self.remember()

    async def stop(self) -> None:
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def remember(self) -> None:
        """Take the ids as they are at start: the consumer's committed positions belong to them."""
        ids = await topic_ids(self._admin, self._topics)
        if ids is None:
            self._supported = False
            log.warning("audit.topic_ids_unsupported", detail="the broker gives no topic ids")
            return
        self._seen = {topic: ids.get(topic) for topic in self._topics}

    async def check(self) -> None:
        """Compare the ids with the last seen, and read the topics that changed again."""
        await self.recreated_topics()

    async def recreated_topics(self) -> list[str]:
        """Compare the ids with the last seen; read the topics that changed again. Returns them."""
        if not self._supported or self._admin is None:
            return []
        ids = await topic_ids(self._admin, self._topics)
        if ids is None:
            return []
        recreated = [
            topic
            for topic in self._topics
            if ids.get(topic) is not None and topic in self._seen and ids[topic] != self._seen[topic]
        ]
        consumer = self._consumer_of()
        if recreated and consumer is not None:
            partitions = [tp for tp in consumer.assignment() if tp.topic in recreated]
            if partitions:
                await consumer.seek_to_beginning(*partitions)
            log.warning(
                "audit.topic_recreated",
                topics=recreated,
                partitions=len(partitions),
                detail="reading them again from the start; records already recorded are skipped",
            )
        elif recreated:
            return []  # no consumer yet: look again next time, with the same ids remembered
        self._seen |= {topic: ids.get(topic) for topic in self._topics}
        return recreated
