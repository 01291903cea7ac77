"""Audit's appends on the real database server: inserts only, heads in memory, chains intact.

A batch of records costs a read of which are recorded already, a read of the heads audit does not
hold in memory, one insert, and one write of the heads it leaves: no processed keys. Two writers (two
replicas, or a replay beside the subscriber) appending to the same chains keep them intact: the one
with a stale head is refused by the unique global numbering and tries again with the heads read
afresh.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from pymongo import monitoring

from crs.audit import BROKEN, verify_request, verify_store
from services.audit.app import AuditHandlers, RecordText, record_identity
from services.audit.reader import AuditReader
from services.audit.store import AuditStore
from shared.delivery import DeliveryPolicy, Inbound, MessageOrigin, ReliableConsumer
from shared.mongo import MongoLedger, build_mongo_client
from shared.topics import REQUEST_STATUS
from tests.support import Servers, unique
from tests.unit.fakes import RecordingPublisher

pytestmark = pytest.mark.integration


class CommandsByCollection(monitoring.CommandListener):
    """The commands sent, as (command, collection)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.counts[(event.command_name, target if isinstance(target, str) else "")] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def status_record(request_id: str, number: int, offset: int) -> Inbound:
    value = json.dumps({"request_id": request_id, "status": "received", "event_id": f"{request_id}-{number}"})
    return Inbound(
        value.encode(), MessageOrigin(REQUEST_STATUS, 0, offset, request_id, timestamp_ms=1_700_000_000)
    )


class Audit:
    """Audit's store and handler under the real delivery machinery, as the service wires them."""

    def __init__(self, servers: Servers, database: str, listener: monitoring.CommandListener | None = None):
        self.client = build_mongo_client(servers.mongodb_uri, listeners=[listener] if listener else [])
        self.store = AuditStore(self.client[database])
        self.handlers = AuditHandlers(self.store)
        self.consumer = ReliableConsumer(
            "audit",
            MongoLedger(self.client, self.client[database]),
            RecordingPublisher(),
            DeliveryPolicy(retry_backoff_seconds=0.01),
        )

    async def start(self) -> None:
        await self.store.ensure_indexes()
        await self.store.check_heads()

    async def record(self, batch: list[Inbound]) -> None:
        await self.consumer.consume_batch(
            batch,
            decode=lambda raw: {"text": raw.decode()},
            model=RecordText,
            idempotency_key=record_identity,
            apply=self.handlers.record,
        )


async def count_entries(audit: Audit) -> Any:
    return await audit.store._entries.count_documents({})


async def test_a_batch_is_inserted_only_and_the_heads_it_leaves_are_kept_in_memory(servers: Servers) -> None:
    commands = CommandsByCollection()
    audit = Audit(servers, unique("audit").lower().replace("-", "_"), commands)
    await audit.start()
    requests = [unique("REQ") for _ in range(5)]

    commands.counts.clear()
    await audit.record([status_record(request, 1, offset) for offset, request in enumerate(requests)])
    assert commands.counts == Counter(
        {
            ("find", "entries"): 2,
            ("insert", "entries"): 1,
            ("update", "request_heads"): 1,
            ("find", "processed_messages"): 1,
            ("commitTransaction", ""): 1,
        }
    )

    commands.counts.clear()
    await audit.record([status_record(request, 2, 5 + offset) for offset, request in enumerate(requests)])
    # Which are recorded already; the heads are in memory; one insert; the heads it leaves.
    assert commands.counts == Counter(
        {
            ("find", "entries"): 1,
            ("insert", "entries"): 1,
            ("update", "request_heads"): 1,
            ("commitTransaction", ""): 1,
        }
    )

    commands.counts.clear()
    await audit.record([status_record(requests[0], 2, 5)])  # a redelivery
    assert commands.counts == Counter({("find", "entries"): 1, ("commitTransaction", ""): 1})
    assert await count_entries(audit) == 10
    async with AuditReader.connect(servers.mongodb_uri, audit.store._entries.database.name) as reader:
        code, lines = await verify_store(reader)
    assert code == 0, lines
    await audit.client.close()


async def test_two_writers_appending_to_the_same_chains_keep_every_chain_intact(servers: Servers) -> None:
    database = unique("audit").lower().replace("-", "_")
    first, second = Audit(servers, database), Audit(servers, database)
    await first.start()
    await second.start()
    requests = [unique("REQ") for _ in range(3)]
    offset = 0
    for round_number in range(6):
        writer = first if round_number % 2 == 0 else second  # each holds stale heads on its turn
        batch = []
        for request in requests:
            batch.append(status_record(request, round_number, offset))
            offset += 1
        await writer.record(batch)
    await first.record([status_record(requests[0], 0, 0)])  # a redelivery to the other writer

    assert await count_entries(first) == 18
    async with AuditReader.connect(servers.mongodb_uri, database) as reader:
        code, lines = await verify_store(reader)
        for request in requests:
            head = await reader.head_of(request)
            assert head is not None
            assert head.sequence == 6
    assert code == 0, lines
    await first.client.close()
    await second.client.close()


async def test_deleting_a_requests_last_entry_is_found_by_verifying_that_request(servers: Servers) -> None:
    database = unique("audit").lower().replace("-", "_")
    audit = Audit(servers, database)
    await audit.start()
    request, later = unique("REQ"), unique("REQ")
    await audit.record([status_record(request, number, number) for number in range(3)])
    await audit.record([status_record(later, 0, 3)])  # the global chain goes on past it
    last = await audit.store._entries.find_one_and_delete({"request_id": request, "sequence": 3})
    assert last is not None

    async with AuditReader.connect(servers.mongodb_uri, database) as reader:
        code, lines = await verify_request(reader, request)
        assert code == BROKEN, lines
        assert f"{request} #3 (missing): gap in the sequence" in lines[1]
        assert (await verify_request(reader, later))[0] == 0
        # Every entry of it gone: the head still says it had three.
        await audit.store._entries.delete_many({"request_id": request})
        code, lines = await verify_request(reader, request)
        assert code == BROKEN, lines
    await audit.client.close()


async def test_entries_carry_no_second_unique_index_unless_an_earlier_release_wrote_the_store(
    servers: Servers,
) -> None:
    # A new store's entries are single by their _id (the record's identity) alone; an index on
    # position and fingerprint would cost every insert a write and a check for nothing.
    fresh = Audit(servers, unique("audit").lower().replace("-", "_"))
    await fresh.start()
    record = status_record(unique("REQ"), 0, 0)
    await fresh.record([record])
    await fresh.record([record])  # delivered again
    assert sorted(await fresh.store._entries.index_information()) == [
        "_id_",
        "global_sequence_1",
        "request_id_1_sequence_1",
    ]
    assert await count_entries(fresh) == 1
    await fresh.client.close()

    # Entries of an earlier release have ObjectIds: that store keeps the index on the position.
    database = unique("audit").lower().replace("-", "_")
    earlier = Audit(servers, database)
    await earlier.client[database].sequences.insert_one({"_id": 0, "last": 0, "hash": ""})
    await earlier.start()
    indexes = await earlier.store._entries.index_information()
    assert indexes["topic_1_partition_1_offset_1_record_fingerprint_1"]["unique"] is True
    await earlier.client.close()
