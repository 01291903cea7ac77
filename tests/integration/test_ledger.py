"""The MongoDB ledger under the delivery machinery: atomic commits, crash recovery, batches."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.delivery import (
    DatabaseUnavailable,
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

POLICY = DeliveryPolicy(max_attempts=2, retry_backoff_seconds=0.01)


class Order(BaseModel):
    order_id: str


def inbound(order_id: str, offset: int) -> Inbound:
    return Inbound(
        json.dumps({"order_id": order_id}).encode(),
        MessageOrigin(topic="orders.v1", partition=0, offset=offset, key=order_id),
    )


class CountingHandler:
    """Counts each order in a view and emits one event per order; breaks on one order if asked."""

    def __init__(self, database: AsyncDatabase[dict[str, Any]], fail_on: str | None = None) -> None:
        self.database = database
        self.fail_on = fail_on

    async def __call__(self, order: Order, tx: LedgerTransaction, _: MessageOrigin) -> None:
        await self.database.orders.update_one(
            {"_id": order.order_id}, {"$inc": {"applied": 1}}, upsert=True, session=tx.session
        )
        if order.order_id == self.fail_on:
            raise RuntimeError("the handler broke after writing")
        tx.emit(OutgoingMessage(f"evt-{order.order_id}", "orders.accepted.v1", order.order_id, b"{}"))


async def consume(reliable: ReliableConsumer, batch: list[Inbound], handler: CountingHandler) -> None:
    await reliable.consume_batch(
        batch, model=Order, idempotency_key=lambda order, _: f"order:{order.order_id}", apply=handler
    )


@pytest.fixture
async def ledger(servers: Servers) -> MongoLedger:
    client = build_mongo_client(servers.mongodb_uri)
    ledger = MongoLedger(client, client[unique("ledger").lower().replace("-", "_")])
    await ledger.ensure_indexes()
    return ledger


async def applied_counts(database: AsyncDatabase[dict[str, Any]]) -> dict[str, int]:
    return {doc["_id"]: doc["applied"] async for doc in database.orders.find()}


async def test_a_crash_after_commit_is_repaired_on_restart_and_nothing_is_applied_twice(
    ledger: MongoLedger,
) -> None:
    database = ledger.database
    handler = CountingHandler(database)
    batch = [inbound("O-1", 1), inbound("O-2", 2)]

    crashed = RecordingPublisher(fail_next=1)
    with pytest.raises(ConnectionError):
        await consume(ReliableConsumer("test", ledger, crashed, POLICY), batch, handler)
    assert crashed.sent == []

    restarted = RecordingPublisher()
    reliable = ReliableConsumer("test", ledger, restarted, POLICY)
    assert await reliable.flush_outbox() == 2  # what a restarted service does at start
    await consume(reliable, batch, handler)  # and then the broker redelivers the batch

    assert sorted(str(sent[1]) for sent in restarted.on("orders.accepted.v1")) == ["O-1", "O-2"]
    assert await applied_counts(database) == {"O-1": 1, "O-2": 1}
    assert await database.outbox.count_documents({}) == 0  # published documents leave the outbox


async def test_a_failing_message_rolls_back_its_batch_and_only_itself_is_dead_lettered(
    ledger: MongoLedger,
) -> None:
    database = ledger.database
    publisher = RecordingPublisher()
    reliable = ReliableConsumer("test", ledger, publisher, POLICY)
    await consume(
        reliable, [inbound("O-1", 1), inbound("O-2", 2), inbound("O-3", 3)], CountingHandler(database, "O-2")
    )

    assert await applied_counts(database) == {"O-1": 1, "O-3": 1}  # O-2's write rolled back with it
    assert [sent[1] for sent in publisher.on("orders.accepted.v1")] == ["O-1", "O-3"]
    (dead,) = publisher.on("orders.v1.dlq")
    assert (dead[1], dead[3]["x-error-reason"]) == ("O-2", "handler_failed")
    assert await database.processed_messages.count_documents({}) == 2


async def test_processed_keys_older_than_the_retention_are_pruned_by_index_in_chunks(
    ledger: MongoLedger,
) -> None:
    from datetime import UTC, datetime, timedelta

    keys = ledger.database.processed_messages
    now = datetime.now(UTC)
    await keys.insert_many(
        [
            {"_id": f"old-{day}-{n}", "processed_at": now - timedelta(days=40 + day)}
            for day in range(5)
            for n in range(5)
        ]
        + [{"_id": f"new-{n}", "processed_at": now - timedelta(days=n)} for n in range(7)]
    )
    cutoff = {"processed_at": {"$lt": now - timedelta(days=30)}}
    plan = await keys.find(cutoff, {"_id": 1}).sort("processed_at", 1).limit(3).explain()
    assert "IXSCAN" in str(plan["queryPlanner"]["winningPlan"])  # no collection scan

    assert await ledger.prune_processed(older_than=timedelta(days=30), chunk_size=3, max_chunks=4) == 12
    assert await ledger.prune_processed(older_than=timedelta(days=30), chunk_size=3) == 13  # goes on
    assert sorted([doc["_id"] async for doc in keys.find()]) == [f"new-{n}" for n in range(7)]


async def test_an_outbox_entry_set_aside_keeps_its_reason_and_leaves_the_outbox(
    ledger: MongoLedger,
) -> None:
    message = OutgoingMessage("evt-Q", "orders.accepted.v1", "Q", b"x" * 100)
    async with ledger.transaction() as transaction:
        transaction.begin("order:Q")
        transaction.emit(message)
    (committed,) = transaction.emitted
    await ledger.set_aside(committed, reason="too large")
    assert await ledger.unpublished() == []
    stored = await ledger.database.outbox_refused.find_one({"_id": "evt-Q"})
    assert stored is not None
    assert (stored["reason"], stored["value"], stored["topic"]) == (
        "too large",
        "x" * 100,
        "orders.accepted.v1",
    )


async def test_a_database_that_does_not_answer_is_an_outage_not_a_dead_letter() -> None:
    from crs.stack import find_free_port

    client = AsyncMongoClient[dict[str, Any]](
        f"mongodb://127.0.0.1:{find_free_port()}/?directConnection=true",
        serverSelectionTimeoutMS=300,
        tz_aware=True,
    )
    unreachable = MongoLedger(client, client.nowhere)
    assert not await unreachable.answers()
    publisher = RecordingPublisher()
    reliable = ReliableConsumer("test", unreachable, publisher, POLICY)
    with pytest.raises(DatabaseUnavailable):
        await consume(reliable, [inbound("O-1", 1)], CountingHandler(client.nowhere))
    assert publisher.sent == []
