"""The outbox on the real database server: one document per transaction, gone once published.

What the publishing side guarantees (order, read-back, lease, set-aside) is tested in
``test_sweeper.py`` and ``test_ledger.py``; this is about what the outbox costs the database: a
transaction's events are one insert, and their publication one delete, whatever their number.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from pymongo import ASCENDING, monitoring

from shared.delivery import (
    DeliveryPolicy,
    Inbound,
    LedgerTransaction,
    MessageOrigin,
    OutgoingMessage,
    ReliableConsumer,
)
from shared.mongo import MongoLedger, build_mongo_client
from tests.support import Servers, unique
from tests.unit.fakes import RecordingPublisher

pytestmark = pytest.mark.integration


class Order(BaseModel):
    order_id: str


class OutboxCommands(monitoring.CommandListener):
    """The commands sent to the outbox collection, by name."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command.get(event.command_name) == "outbox":
            self.counts[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def emit_two_events(order: Order, tx: LedgerTransaction, _: MessageOrigin) -> None:
    for step in ("accepted", "priced"):
        tx.emit(OutgoingMessage(f"evt-{order.order_id}-{step}", f"orders.{step}.v1", order.order_id, b"{}"))


def inbound(order_id: str, offset: int) -> Inbound:
    return Inbound(
        json.dumps({"order_id": order_id}).encode(),
        MessageOrigin(topic="orders.v1", partition=0, offset=offset, key=order_id),
    )


async def test_a_batch_s_events_are_one_outbox_document_and_one_delete_once_published(
    servers: Servers,
) -> None:
    commands = OutboxCommands()
    client = build_mongo_client(servers.mongodb_uri, listeners=[commands])
    ledger = MongoLedger(client, client[unique("outbox").lower().replace("-", "_")])
    await ledger.ensure_indexes()
    publisher = RecordingPublisher()
    reliable = ReliableConsumer("test", ledger, publisher, DeliveryPolicy())
    commands.counts.clear()

    await reliable.consume_batch(
        [inbound(f"O-{n}", n) for n in range(50)],
        model=Order,
        idempotency_key=lambda order, _: f"order:{order.order_id}",
        apply=emit_two_events,
    )
    await reliable.settle_published()  # the acknowledgements and the delete, beside the next batch

    assert len(publisher.sent) == 100
    # The insert of the batch's document, the read of what its keys left before it, the delete.
    assert commands.counts == Counter({"insert": 1, "find": 1, "delete": 1})
    assert await ledger.database.outbox.count_documents({}) == 0
    await client.close()


async def test_an_outbox_document_published_in_part_keeps_only_what_did_not_go_out(
    servers: Servers,
) -> None:
    client = build_mongo_client(servers.mongodb_uri)
    ledger = MongoLedger(client, client[unique("outbox").lower().replace("-", "_")])
    await ledger.ensure_indexes()
    async with ledger.transaction() as transaction:
        transaction.begin("order:A")
        for number in range(3):
            transaction.emit(OutgoingMessage(f"evt-{number}", "orders.v1", f"K{number}", b"{}"))
    first, _, third = transaction.emitted

    await ledger.mark_published([first, third])
    assert [message.message_id for message in await ledger.unpublished()] == ["evt-1"]
    (left,) = await ledger.unpublished()
    await ledger.mark_published([left])
    assert await ledger.database.outbox.count_documents({}) == 0
    await client.close()


async def test_an_outbox_of_an_earlier_release_is_moved_to_documents_in_order_and_its_ttl_index_goes(
    servers: Servers,
) -> None:
    """Earlier releases kept a row per event, marked published and dropped by a TTL index."""
    client = build_mongo_client(servers.mongodb_uri)
    database = client[unique("outbox").lower().replace("-", "_")]
    outbox = database.outbox
    await outbox.create_index([("published", ASCENDING), ("created_at", ASCENDING), ("position", ASCENDING)])
    await outbox.create_index([("key", ASCENDING), ("published", ASCENDING)])
    await outbox.create_index("published_at", expireAfterSeconds=7 * 24 * 3600)
    committed = datetime.now(UTC) - timedelta(minutes=5)

    def row(number: int, *, published: bool) -> dict[str, Any]:
        return {
            "_id": f"evt-{number}",
            "source_key": f"order:{number}",
            "topic": "orders.v1",
            "key": "K",
            "value": json.dumps({"number": number}),
            "created_at": committed + timedelta(seconds=number // 2),
            "position": number % 2,
            "published": published,
            **({"published_at": committed} if published else {}),
        }

    await outbox.insert_many([row(0, published=True), *(row(n, published=False) for n in (3, 1, 2))])

    ledger = MongoLedger(client, database)
    await ledger.ensure_indexes()
    await ledger.ensure_indexes()  # a second replica starting: nothing moved twice

    assert [message.message_id for message in await ledger.unpublished()] == ["evt-1", "evt-2", "evt-3"]
    indexes = await outbox.index_information()
    assert not [name for name, index in indexes.items() if "expireAfterSeconds" in index]
    assert sorted(indexes) == ["_id_", "created_at_1", "keys_1", "source_keys_1"]
    publisher = RecordingPublisher()
    await ReliableConsumer("test", ledger, publisher, DeliveryPolicy(outbox_grace=timedelta(0))).sweep_once()
    assert [json.loads(value)["number"] for _, _, value, _ in publisher.sent] == [1, 2, 3]
    assert await outbox.count_documents({}) == 0
    await client.close()
