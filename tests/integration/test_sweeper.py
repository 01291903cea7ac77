"""The outbox sweeper and the start-up flush on the real broker and database.

What a crash leaves in the outbox (committed, never published, or published but not marked) must
go out, and go out once: one sweeper per service however many replicas run, a grace period that
leaves a replica's fresh entries to the replica that is publishing them, and a request's events in
the order they were committed even when an earlier one was left behind.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from services.intake.app import build_app as build_intake
from services.intake.settings import IntakeSettings
from shared.delivery import (
    DeliveryPolicy,
    Inbound,
    LedgerTransaction,
    MessageOrigin,
    OutgoingMessage,
    ReliableConsumer,
    refused_for_good_by_broker,
)
from shared.kafka import BrokerPublisher, ensure_topics
from shared.mongo import MongoLease, MongoLedger, build_mongo_client
from shared.published_check import PublishedCheck
from tests.support import Servers, isolated_settings, mongo, records_now, running_service, unique, wait_until

pytestmark = pytest.mark.integration

HOUR_AGO = timedelta(hours=1)


async def new_topic(servers: Servers) -> str:
    """A topic of the test's own, so that what is on it was published by this test."""
    topic = f"test.sweeper.{unique('t').lower()}"
    await ensure_topics(servers.bootstrap_servers, [topic], partitions=4)
    return topic


def outbox_entry(topic: str, key: str, number: int, *, age: timedelta) -> dict[str, Any]:
    """An outbox document as a transaction writes it (one event), committed ``age`` ago, not published."""
    event_id, source_key = f"{key}-evt-{number}", f"test:{key}:{number}"
    return {
        "_id": f"batch-{event_id}",
        "created_at": datetime.now(UTC) - age,
        "keys": [key],
        "source_keys": [source_key],
        "events": [
            {
                "id": event_id,
                "source_key": source_key,
                "topic": topic,
                "key": key,
                "value": json.dumps({"key": key, "number": number}),
            }
        ],
    }


async def in_outbox(outbox: Any, event_id: str) -> bool:
    """Whether the event is still in the outbox (unpublished): published events leave it."""
    return bool(await outbox.count_documents({"_id": f"batch-{event_id}"}) == 1)


async def published_ids(servers: Servers, topic: str) -> Counter[str]:
    """How often each event id is on ``topic`` (records are keyed, valued ``{key, number}``)."""
    records = await records_now(servers, [topic], lambda _: True, settle=2.0)
    return Counter(f"{record.value['key']}-evt-{record.value['number']}" for record in records)


async def test_two_replicas_sweep_a_crash_s_leftovers_once(servers: Servers) -> None:
    """Two replicas of one service share its outbox; what a crash left there is published once."""
    topic = await new_topic(servers)
    settings = isolated_settings(IntakeSettings, outbox_sweep_seconds=0.1, outbox_grace_seconds=1.0)
    second = settings.model_copy(update={"consumer_group": f"{settings.consumer_group}-b"})
    outbox = mongo(servers)[settings.database].outbox
    expected: list[str] = []
    async with (
        running_service(build_intake, settings, servers),
        running_service(build_intake, second, servers),
    ):
        # Leftovers keep appearing (other replicas crashing), while both sweepers run.
        for round_number in range(6):
            rows = [outbox_entry(topic, f"K{key}", round_number, age=HOUR_AGO) for key in range(40)]
            await outbox.insert_many(rows)
            expected += [row["events"][0]["id"] for row in rows]
            await asyncio.sleep(0.7)

        async def all_marked() -> bool:
            return await outbox.count_documents({}) == 0

        await wait_until(all_marked, timeout=60)
    published = await published_ids(servers, topic)
    assert sorted(published) == sorted(expected)
    repeated = {event_id: count for event_id, count in published.items() if count > 1}
    assert repeated == {}


async def test_the_start_up_flush_leaves_fresh_entries_to_the_replica_publishing_them(
    servers: Servers,
) -> None:
    """At start, what a crash left long ago goes out; an entry committed a moment ago does not.

    The fresh entry belongs to a replica that is still running and publishing it itself: sending
    it too would repeat it (and, for a request's statuses, race that replica's order).
    """
    topic = await new_topic(servers)
    settings = isolated_settings(IntakeSettings, outbox_sweep_seconds=0.2, outbox_grace_seconds=120.0)
    outbox = mongo(servers)[settings.database].outbox
    key = unique("K")
    await outbox.insert_many(
        [outbox_entry(topic, key, 1, age=HOUR_AGO), outbox_entry(topic, key, 2, age=timedelta(0))]
    )
    async with running_service(build_intake, settings, servers):

        async def old_one_published() -> bool:
            return not await in_outbox(outbox, f"{key}-evt-1")

        await wait_until(old_one_published, timeout=60)
        published = await published_ids(servers, topic)
        fresh = await in_outbox(outbox, f"{key}-evt-2")
    assert published == Counter({f"{key}-evt-1": 1})
    assert fresh


class Step(BaseModel):
    request_id: str
    step: int


class Steps:
    """Applies a step of a request by emitting its status event."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    async def __call__(self, step: Step, tx: LedgerTransaction, _: MessageOrigin) -> None:
        tx.emit(status_event(self.topic, step.request_id, step.step))


def status_event(topic: str, request_id: str, number: int) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=f"{request_id}-evt-{number}",
        topic=topic,
        key=request_id,
        value=json.dumps({"key": request_id, "number": number}).encode(),
    )


class BrokerGoesAway:
    """The broker behind a publisher that fails while ``down``: a crash between commit and publish."""

    def __init__(self, publish: BrokerPublisher) -> None:
        self._publish = publish
        self.down = False

    async def __call__(
        self, value: bytes, *, topic: str, key: str | None, headers: dict[str, str]
    ) -> Awaitable[object]:
        if self.down:
            raise ConnectionError("the broker went away")
        return await self._publish(value, topic=topic, key=key, headers=headers)


@asynccontextmanager
async def connected_broker(servers: Servers) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(servers.bootstrap_servers, acks="all", enable_idempotence=False)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.stop()


async def test_a_request_s_events_leave_in_the_order_they_were_committed(servers: Servers) -> None:
    """An event left in the outbox goes out before a later event of the same request.

    Step 1 of a request is committed but its publish fails (the broker went away, or the process
    died between commit and publish). Step 2 of the same request is then committed and published
    as usual. On the topic, step 1 must come first: the contract says a request's statuses are
    published in the order they happened.
    """
    topic = await new_topic(servers)
    request_id = unique("REQ")
    client = build_mongo_client(servers.mongodb_uri)
    ledger = MongoLedger(client, client[unique("order").lower().replace("-", "_")])
    await ledger.ensure_indexes()
    async with AsyncExitStack() as stack:
        broker = await stack.enter_async_context(connected_broker(servers))
        publisher = BrokerGoesAway(BrokerPublisher(broker))
        reliable = ReliableConsumer(
            "test", ledger, publisher, DeliveryPolicy(max_attempts=1, outbox_grace=timedelta(seconds=1))
        )
        steps = Steps(topic)

        async def step(number: int) -> None:
            value = json.dumps({"request_id": request_id, "step": number}).encode()
            origin = MessageOrigin(topic="test.steps.v1", partition=0, offset=number, key=request_id)
            await reliable.consume_batch(
                [Inbound(value, origin)],
                model=Step,
                idempotency_key=lambda message, _: f"step:{message.request_id}:{message.step}",
                apply=steps,
            )

        publisher.down = True
        with pytest.raises(ConnectionError):
            await step(1)
        publisher.down = False
        await step(2)
        await reliable.flush_outbox()  # whatever is left goes now, as a sweeper would send it
        records = await records_now(servers, [topic], lambda record: record.key == request_id)
    await client.close()
    first_seen = list(dict.fromkeys(record.value["number"] for record in records))
    assert first_seen == [1, 2]


async def test_an_event_the_broker_never_takes_is_set_aside_and_the_request_s_next_events_go_out(
    servers: Servers,
) -> None:
    topic = await new_topic(servers)
    request_id = unique("REQ")
    client = build_mongo_client(servers.mongodb_uri)
    ledger = MongoLedger(client, client[unique("refused").lower().replace("-", "_")])
    await ledger.ensure_indexes()
    async with connected_broker(servers) as broker:
        # A broker with a smaller limit than ours (or a row an older release committed): our own
        # check before the commit lets it in, the broker refuses it.
        reliable = ReliableConsumer(
            "test",
            ledger,
            BrokerPublisher(broker),
            DeliveryPolicy(max_record_bytes=8 * 1024 * 1024),
            refused_for_good=refused_for_good_by_broker,
        )
        huge = OutgoingMessage(f"{request_id}-evt-1", topic, request_id, b"x" * (2 * 1024 * 1024))
        await reliable.run_in_transaction(lambda tx: _emit(tx, huge), source_key="timer:1")
        await reliable.run_in_transaction(
            lambda tx: _emit(tx, status_event(topic, request_id, 2)), source_key="timer:2"
        )
        records = await records_now(servers, [topic], lambda record: record.key == request_id)
    refused = await ledger.database.outbox_refused.find_one({"_id": f"{request_id}-evt-1"})
    left = await ledger.database.outbox.count_documents({})
    await client.close()
    assert [record.value["number"] for record in records] == [2]
    assert refused is not None
    assert "MessageSizeTooLarge" in refused["reason"]
    assert left == 0


async def _emit(tx: LedgerTransaction, message: OutgoingMessage) -> None:
    tx.emit(message)


async def test_an_entry_another_replica_committed_a_moment_ago_is_left_to_it(servers: Servers) -> None:
    """Another replica is publishing its fresh entry right now: a later event of the request does not
    send it too (a repeat); after the grace period it would count as left behind."""
    topic = await new_topic(servers)
    request_id = unique("REQ")
    client = build_mongo_client(servers.mongodb_uri)
    ledger = MongoLedger(client, client[unique("fresh").lower().replace("-", "_")])
    await ledger.ensure_indexes()
    await ledger.database.outbox.insert_one(outbox_entry(topic, request_id, 1, age=timedelta(0)))
    async with connected_broker(servers) as broker:
        reliable = ReliableConsumer(
            "test", ledger, BrokerPublisher(broker), DeliveryPolicy(outbox_grace=timedelta(seconds=60))
        )
        await reliable.run_in_transaction(
            lambda tx: _emit(tx, status_event(topic, request_id, 2)), source_key="timer:2"
        )
        records = await records_now(servers, [topic], lambda record: record.key == request_id)
    fresh = await in_outbox(ledger.database.outbox, f"{request_id}-evt-1")
    await client.close()
    assert [record.value["number"] for record in records] == [2]
    assert fresh


async def test_the_sweeper_lease_is_held_by_one_replica_until_it_expires_or_is_given_up(
    servers: Servers,
) -> None:
    client = build_mongo_client(servers.mongodb_uri)
    database = client[unique("lease").lower().replace("-", "_")]
    now = datetime.now(UTC)
    clock = {"now": now}

    def lease(holder: str) -> MongoLease:
        return MongoLease(
            database, "outbox-sweeper", holder=holder, ttl=timedelta(seconds=10), clock=lambda: clock["now"]
        )

    first, second = lease("replica-a"), lease("replica-b")
    assert await first.hold()
    assert not await second.hold()
    assert await first.hold()  # renewed
    clock["now"] = now + timedelta(seconds=11)  # the first stopped renewing (killed)
    assert await second.hold()
    assert not await first.hold()
    await second.release()
    assert await first.hold()
    await client.close()


class DiesBeforeTheMark(MongoLedger):
    """A ledger whose process dies after the broker acknowledged its events, before it marks them."""

    async def mark_published(self, messages: Sequence[OutgoingMessage]) -> None:
        raise ConnectionError("killed between the broker's acknowledgement and the mark")


async def test_what_went_out_before_a_crash_is_not_sent_again_after_it(servers: Servers) -> None:
    """Killed between the broker's acknowledgement and the mark: the events are on the topic but
    look unpublished. Whoever publishes them next (the sweeper, a redelivered message) reads the
    topic back first and only marks them."""
    topic = await new_topic(servers)
    request_id = unique("REQ")
    client = build_mongo_client(servers.mongodb_uri)
    database = client[unique("readback").lower().replace("-", "_")]
    async with connected_broker(servers) as broker:
        dying_ledger = DiesBeforeTheMark(client, database)
        await dying_ledger.ensure_indexes()
        dying = ReliableConsumer("test", dying_ledger, BrokerPublisher(broker))
        with pytest.raises(ConnectionError):
            await dying.run_in_transaction(
                lambda tx: _emit_all(tx, [status_event(topic, request_id, n) for n in (1, 2, 3)]),
                source_key="timer:1",
            )
        restarted = ReliableConsumer(
            "test",
            MongoLedger(client, database),
            BrokerPublisher(broker),
            DeliveryPolicy(outbox_grace=timedelta(0)),
            already_published=PublishedCheck(servers.bootstrap_servers),
        )
        await restarted.sweep_once()
        records = await records_now(servers, [topic], lambda record: record.key == request_id)
    left = await database.outbox.count_documents({})
    await client.close()
    assert [record.value["number"] for record in records] == [1, 2, 3]
    assert left == 0


async def _emit_all(tx: LedgerTransaction, messages: list[OutgoingMessage]) -> None:
    for message in messages:
        tx.emit(message)
