"""Two copies of one request validated at the same moment, on the real database server.

Duplicate detection reads the open requests, then opens the new one. Two validation replicas (or
the hold re-check and the subscriber) can each read before the other writes. 100 simultaneous pairs
did not show it here: on the local database server (SecantusDB 0.7.0b3) two transactions that
write concurrently into a multikey index (``open_requests.invoice_ids``) always conflict, even for
different values, so simultaneous pairs were serialised by accident. MongoDB does not do that
(different documents, different index entries: no conflict). So this test leaves those indexes
out, as MongoDB would not conflict on them, and makes the interleaving certain: two replicas, each
with the real store, ledger and delivery machinery on the real server; both read, the first
commits, then the second writes. Exactly one may be validated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.intake.domain import capture_crm_request
from services.validation.app import ValidationHandlers, customer_document, rules_of
from services.validation.lifecycle import OpenRequest, Outcome, RequestValidation, ValidationState
from services.validation.settings import ValidationSettings
from services.validation.store import ValidationStore
from shared.contract import CrmRequest, Customer, RequestStatus
from shared.delivery import DeliveryPolicy, Inbound, MessageOrigin, ReliableConsumer
from shared.events import RequestCaptured
from shared.kafka import build_broker
from shared.mongo import Document, MongoLedger, build_mongo_client
from shared.topics import REQUEST_CAPTURED
from tests.e2e.scenario import World, new_world
from tests.support import Servers, isolated_settings, unique
from tests.unit.fakes import RecordingPublisher

pytestmark = pytest.mark.integration


class StoreThatPausesBeforeOpening(ValidationStore):
    """The real store, except that the first time it opens a request it first awaits ``pause``.

    Later attempts (a retry after a conflict) do not pause.
    """

    def __init__(self, database: AsyncDatabase[Document], pause: Callable[[], Awaitable[None]]) -> None:
        super().__init__(database)
        self._pause: Callable[[], Awaitable[None]] | None = pause

    async def ensure_indexes(self) -> None:
        """The store's indexes, less the multikey ones of open requests: on the local server their
        writes conflict between any two concurrent transactions, an accident MongoDB does not share
        (there, transactions writing different documents never conflict), and the duplicate claim
        must hold without it."""
        await super().ensure_indexes()
        existing = await self._open.index_information()
        for name in ("invoice_ids_1", "payment_ids_1"):
            if name in existing:
                await self._open.drop_index(name)

    async def open_request(
        self, request: OpenRequest, *args: Any, session: AsyncClientSession, **kw: Any
    ) -> None:
        if self._pause is not None:
            pause, self._pause = self._pause, None
            await asyncio.wait_for(pause(), timeout=30)
        await super().open_request(request, *args, session=session, **kw)


@dataclass
class Replica:
    consumer: ReliableConsumer
    handlers: ValidationHandlers

    async def validate(self, event: RequestCaptured, offset: int) -> None:
        inbound = Inbound(
            event.model_dump_json().encode(),
            MessageOrigin(topic=REQUEST_CAPTURED, partition=0, offset=offset, key=event.request_id),
        )
        await self.consumer.consume_batch(
            [inbound],
            model=RequestCaptured,
            idempotency_key=lambda captured, _: f"event:{captured.event_id}",
            apply=self.handlers.validate,
        )


@pytest.fixture
async def broker(servers: Servers) -> AsyncIterator[KafkaBroker]:
    kafka = build_broker(servers.bootstrap_servers, client_id=unique("race"))
    await kafka.connect()
    try:
        yield kafka
    finally:
        await kafka.stop()


async def known_world(store: ValidationStore, world: World) -> None:
    updated_at = datetime.fromisoformat(world.customer["updated_at"])
    customer = customer_document(Customer.model_validate(world.customer))
    await store.customers.upsert_if_newer(world.customer_id, customer, updated_at, session=None)
    await store.contracts.upsert_if_newer(world.contract_id, world.contract, updated_at, session=None)
    await store.invoices.upsert_if_newer(world.invoice_id, world.invoice, updated_at, session=None)


def captured(world: World) -> RequestCaptured:
    case = CrmRequest.model_validate(world.dispute(unique("CASE")))
    return capture_crm_request(case, now=datetime.now(UTC)).captured


async def test_two_copies_validated_at_the_same_moment_by_two_replicas_pass_only_one(
    servers: Servers, broker: KafkaBroker
) -> None:
    settings = isolated_settings(ValidationSettings)
    client = build_mongo_client(servers.mongodb_uri)
    database = client[settings.database]
    ledger = MongoLedger(client, database)
    await ledger.ensure_indexes()
    # The interleaving: both replicas read the open requests (finding none); the first opens its
    # request and commits; only then does the second, still in its transaction, open its own.
    second_has_read, first_committed = asyncio.Event(), asyncio.Event()

    async def first_waits_for_the_second_to_read() -> None:
        await second_has_read.wait()

    async def second_waits_for_the_first_to_commit() -> None:
        second_has_read.set()
        await first_committed.wait()

    replicas = []
    sent = RecordingPublisher()
    for pause in (first_waits_for_the_second_to_read, second_waits_for_the_first_to_commit):
        store = StoreThatPausesBeforeOpening(database, pause)
        await store.ensure_indexes()
        consumer = ReliableConsumer(
            service="validation",
            ledger=ledger,
            publish=sent,
            policy=DeliveryPolicy(retry_backoff_seconds=0.05),
        )
        replicas.append(Replica(consumer, ValidationHandlers(store, rules_of(settings))))
    # As in a service that has handled requests before: creating a collection is a catalog write
    # that would make the two transactions conflict on their very first request.
    existing = set(await database.list_collection_names())
    for name in ("validations", "processed_messages", "open_requests", "claims", "outbox", "holds"):
        if name not in existing:
            await database.create_collection(name)
    world = new_world()
    await known_world(store, world)  # both replicas share the database
    first, second = captured(world), captured(world)

    async def validate_first() -> None:
        await replicas[0].validate(first, offset=0)
        first_committed.set()

    await asyncio.wait_for(
        asyncio.gather(validate_first(), replicas[1].validate(second, offset=1)), timeout=60
    )

    outcomes = {
        found["_id"]: found["outcome"]
        async for found in database.validations.find({"_id": {"$in": [first.request_id, second.request_id]}})
    }
    assert sorted(outcomes.values()) == ["duplicate_of", "validated"], outcomes
    # What went out (published events leave the outbox), and what is still in it.
    passed_on = [
        json.loads(value)["request_id"]
        for topic, _, value, _ in sent.sent
        if topic == "requests.validated.v1"
    ] + [
        json.loads(event["value"])["request_id"]
        async for batch in database.outbox.find({})
        for event in batch["events"]
        if event["topic"] == "requests.validated.v1"
    ]
    assert len(passed_on) == 1
    await client.close()


async def test_a_request_opened_again_gives_up_the_claims_it_no_longer_makes_and_closing_frees_the_rest(
    servers: Servers,
) -> None:
    settings = isolated_settings(ValidationSettings)
    client = build_mongo_client(servers.mongodb_uri)
    store = ValidationStore(client[settings.database])
    await store.ensure_indexes()
    opened_at = datetime.now(UTC)

    def opened(*invoices: str) -> OpenRequest:
        return OpenRequest("REQ-1", "CUST-1", None, invoices, (), opened_at)

    request = RequestValidation(
        "REQ-1",
        state=ValidationState.VALIDATED,
        opened=opened("INV-1", "INV-2"),
        claims=("k1", "k2"),
        claim_criteria=("invoice",),
        open=True,
        outcome=Outcome(RequestStatus.VALIDATED, None, "CUST-1", (), (), opened_at),
    )
    async with client.start_session() as session, await session.start_transaction():
        await store.save(request, session=session)
    async with client.start_session() as session, await session.start_transaction():
        again = await store.load("REQ-1", session=session)
        assert again is not None
        assert (again.open, again.claims) == (True, ("k1", "k2"))
        again.opened, again.claims = opened("INV-2"), ("k2",)
        await store.save(again, session=session)
        assert [claim.key for claim in await store.claims_held(["k1", "k2"], session=session)] == ["k2"]
    async with client.start_session() as session, await session.start_transaction():
        closing = await store.load("REQ-1", session=session)
        assert closing is not None
        closing.finish(RequestStatus.CLOSED, opened_at + timedelta(seconds=1))
        await store.save(closing, session=session)
        assert await store.claims_held(["k1", "k2"], session=session) == []
    assert (await client[settings.database].open_requests.find_one({"_id": "REQ-1"}) or {})["open"] is False
    await client.close()
