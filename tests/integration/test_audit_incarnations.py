"""Audit after a topic is deleted and created again, on the real broker.

A topic created again numbers its records from 0 again. Audit must record the new records at the
reused offsets (they are not the old ones), whether it was stopped while the topic was re-created
or kept running through it, and must still record each record once.

These tests delete and re-create ``requests.updated.v1`` (intake's email replies: no other test
waits for records on it) on the shared broker, with the partition count it had.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.audit.app import build_app as build_audit
from services.audit.settings import AuditSettings
from shared.topics import REQUEST_UPDATED
from tests.support import Servers, isolated_settings, mongo, running_service, unique, wait_until

pytestmark = pytest.mark.integration

TOPIC = REQUEST_UPDATED
PARTITION = 0


async def recreate_topic(servers: Servers, topic: str) -> None:
    """Delete ``topic`` and create it again with as many partitions as it had."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        partitions = len(described["partitions"])
        await admin.delete_topics([topic])
        # Apache Kafka deletes asynchronously: creating may fail until the old topic is gone.
        for _ in range(100):
            try:
                await admin.create_topics([NewTopic(topic, partitions, 1)])
                return
            except TopicAlreadyExistsError:
                await asyncio.sleep(0.2)
        raise AssertionError(f"{topic} could not be created again")
    finally:
        await admin.close()


async def publish_on_partition(servers: Servers, request_id: str, count: int) -> list[int]:
    """``count`` records of ``request_id`` on partition 0 (so their offsets are reused); their offsets."""
    client = AIOKafkaProducer(bootstrap_servers=servers.bootstrap_servers, acks="all")
    await client.start()
    try:
        offsets = []
        for number in range(count):
            value = {"event_type": "EmailReplyAdded", "request_id": request_id, "number": number}
            sent = await client.send_and_wait(
                TOPIC, json.dumps(value).encode(), key=request_id.encode(), partition=PARTITION
            )
            offsets.append(sent.offset)
        return offsets
    finally:
        await client.stop()


async def recorded(servers: Servers, settings: AuditSettings, request_id: str) -> list[dict[str, Any]]:
    entries = mongo(servers)[settings.database].entries
    return [entry async for entry in entries.find({"request_id": request_id}).sort("sequence", 1)]


async def wait_recorded(servers: Servers, settings: AuditSettings, request_id: str, count: int) -> list[int]:
    async def enough() -> list[dict[str, Any]] | None:
        found = await recorded(servers, settings, request_id)
        return found if len(found) >= count else None

    entries = await wait_until(enough, timeout=60)
    return [entry["offset"] for entry in entries]


async def test_reused_offsets_are_recorded_after_the_topic_was_created_again_while_audit_was_stopped(
    servers: Servers,
) -> None:
    settings = isolated_settings(AuditSettings)
    before, after = unique("REQ-BEFORE"), unique("REQ-AFTER")
    await recreate_topic(servers, TOPIC)  # a fresh topic: its offsets start at 0
    async with running_service(build_audit, settings, servers):
        old_offsets = await publish_on_partition(servers, before, 3)
        await wait_recorded(servers, settings, before, 3)

    await recreate_topic(servers, TOPIC)
    new_offsets = await publish_on_partition(servers, after, 3)
    assert set(new_offsets) & set(old_offsets), "the new topic should reuse the old offsets"

    async with running_service(build_audit, settings, servers):
        assert sorted(await wait_recorded(servers, settings, after, 3)) == new_offsets
        await asyncio.sleep(2)  # anything recorded twice would show by now
    assert len(await recorded(servers, settings, before)) == 3
    assert len(await recorded(servers, settings, after)) == 3


async def test_reused_offsets_are_recorded_when_the_topic_is_created_again_while_audit_runs(
    servers: Servers,
) -> None:
    settings = isolated_settings(AuditSettings, incarnation_check_seconds=0.5)
    before, after = unique("REQ-BEFORE"), unique("REQ-AFTER")
    await recreate_topic(servers, TOPIC)  # a fresh topic: its offsets start at 0
    async with running_service(build_audit, settings, servers):
        old_offsets = await publish_on_partition(servers, before, 3)
        await wait_recorded(servers, settings, before, 3)

        await recreate_topic(servers, TOPIC)
        # More records than before: a consumer still at the old position would fetch only the
        # ones past it and never those at the reused offsets.
        new_offsets = await publish_on_partition(servers, after, len(old_offsets) + 2)
        assert set(new_offsets) >= set(old_offsets)

        assert sorted(await wait_recorded(servers, settings, after, len(new_offsets))) == new_offsets
        await asyncio.sleep(2)  # the topic read again from its start: nothing may be recorded twice
        assert len(await recorded(servers, settings, after)) == len(new_offsets)
    assert len(await recorded(servers, settings, before)) == 3
