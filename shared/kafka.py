"""Broker factory and topic administration shared by every service and by the `crs` tool."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

log = structlog.get_logger(__name__)


def build_broker(bootstrap_servers: str, *, client_id: str) -> KafkaBroker:
    """A FastStream Kafka broker with the delivery settings every service relies on.

    ``acks="all"`` so a published event survives the loss of the leader; idempotent producers
    are off because the local broker (tansu) cannot grant producer ids: consumers are
    idempotent instead, which also covers redelivery.
    """
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        logger=structlog.get_logger("faststream"),
        # FastStream's "Received"/"Processed" lines are per consumed batch (many requests), so
        # they cannot carry one request's ids: DEBUG. The delivery layer logs per message, bound.
        log_level=logging.DEBUG,
    )


class BrokerPublisher:
    """Publishes raw bytes with a string key through a FastStream broker (the delivery Publisher)."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def __call__(
        self, value: bytes, *, topic: str, key: str | None, headers: dict[str, str]
    ) -> Awaitable[object]:
        # no_confirm: hand the record to the producer and return its delivery future, so that a
        # batch of events is in flight together instead of one broker round trip each.
        delivery: Awaitable[object] | None = await self._broker.publish(
            value,
            topic=topic,
            key=key.encode() if key is not None else None,
            headers=headers,
            no_confirm=True,
        )
        if delivery is None:  # FastStream's in-memory test broker delivers at once, returns nothing
            delivery = asyncio.sleep(0)
        return delivery


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = 1,
    attempts: int = 20,
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are.

    Retries the connection for a while because at start the broker may still be coming up.
    """
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="crs-admin")
    for attempt in range(1, attempts + 1):
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if attempt == attempts:
                raise
            await asyncio.sleep(min(0.2 * attempt, 2.0))
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic not in existing]
        if not missing:
            return
        # Another service may create some of them between our listing and our request.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [
                    NewTopic(name=topic, num_partitions=partitions, replication_factor=replication_factor)
                    for topic in missing
                ]
            )
        log.info("topics.created", topics=missing, partitions=partitions)
    finally:
        await admin.close()
