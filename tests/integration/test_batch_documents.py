"""A batch's unit of work on the real database server (shared.mongo.BatchDocuments), and the
bounded queries that replaced scans (issue 13, phase 2)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, ReplaceOne, UpdateOne, monitoring
from pymongo.asynchronous.database import AsyncDatabase

import services.validation.store as validation_store
from services.validation.store import ValidationStore
from shared.document_numbers import number_keys
from shared.mongo import (
    IN_CHUNK,
    BatchDocuments,
    Document,
    batch_documents,
    build_mongo_client,
    open_batch_documents,
)
from shared.reference_views import ReferenceView
from tests.support import Servers, unique

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def database(servers: Servers) -> AsyncIterator[AsyncDatabase[Document]]:
    client: AsyncMongoClient[Document] = build_mongo_client(servers.mongodb_uri)
    try:
        yield client[unique("batch").lower().replace("-", "_")]
    finally:
        await client.close()


class Commands(monitoring.CommandListener):
    """The names of the commands a client sends, in order."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.filters: list[tuple[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(event.command_name)
        self.filters.append((event.command_name, event.command.get("filter")))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def counted(
    servers: Servers, database: AsyncDatabase[Document]
) -> AsyncIterator[tuple[AsyncDatabase[Document], Commands]]:
    """The test's database through a client of its own, whose commands are counted."""
    commands = Commands()
    client: AsyncMongoClient[Document] = build_mongo_client(servers.mongodb_uri, listeners=[commands])
    try:
        yield client[database.name], commands
    finally:
        await client.close()


async def test_a_batch_reads_once_sees_its_own_staged_writes_and_writes_them_at_the_commit(
    counted: tuple[AsyncDatabase[Document], Commands],
) -> None:
    database, commands = counted
    documents = database.documents
    await documents.insert_many([{"_id": f"D{n}", "n": n} for n in range(5)])
    async with database.client.start_session() as session, await session.start_transaction():
        hooks: list[Any] = []
        batch = open_batch_documents(session, hooks.append)
        assert batch_documents(session) is batch
        before = len(commands.sent)
        found = await batch.fetch(documents, ["D0", "D1", "D2", "missing"])
        assert [(document or {}).get("n") for document in found.values()] == [0, 1, 2, None]
        await batch.fetch(documents, ["D1", "D2"])  # read already: no statement
        assert commands.sent[before:] == ["find"]

        replaced = {"_id": "D1", "n": 10}
        await batch.stage(documents, ReplaceOne({"_id": "D1"}, replaced), one="D1", becomes=replaced)
        assert (await batch.fetch_one(documents, "D1")) == replaced
        assert await documents.find_one({"_id": "D1"}, session=session) == {"_id": "D1", "n": 1}

        # A partial update: the next read of that id sends the staged writes and reads it again.
        await batch.stage(documents, UpdateOne({"_id": "D2"}, {"$inc": {"n": 5}}), one="D2")
        assert (await batch.fetch_one(documents, "D2")) == {"_id": "D2", "n": 7}

        for hook in hooks:
            await hook()
    assert await documents.find_one({"_id": "D1"}) == {"_id": "D1", "n": 10}
    assert await documents.find_one({"_id": "D2"}) == {"_id": "D2", "n": 7}


async def test_documents_found_by_a_field_are_known_by_id_and_a_staged_write_still_wins(
    counted: tuple[AsyncDatabase[Document], Commands],
) -> None:
    database, commands = counted
    invoices = database.invoices
    await invoices.insert_many(
        [
            {"_id": "INV-1", "number_keys": ["1"]},
            {"_id": "INV-2", "number_keys": ["2"]},
            {"_id": "INV-3", "number_keys": ["3"]},
        ]
    )
    async with database.client.start_session() as session, await session.start_transaction():
        batch = open_batch_documents(session, lambda _: None)
        written = {"_id": "INV-2", "number_keys": ["2"], "changed": True}
        await batch.stage(invoices, ReplaceOne({"_id": "INV-2"}, written), one="INV-2", becomes=written)
        await batch.fetch_by(invoices, "number_keys", ["1", "2"])
        before = len(commands.sent)
        found = await batch.fetch(invoices, ["INV-1", "INV-2"])
        assert commands.sent[before:] == []  # both known: one by the field, one as staged
        assert found == {"INV-1": {"_id": "INV-1", "number_keys": ["1"]}, "INV-2": written}
        assert (await batch.fetch(invoices, ["INV-3", "INV-9"]))["INV-9"] is None
        assert commands.sent[before:] == ["find"]  # what the field did not find is read


async def test_staged_writes_of_a_batch_that_does_not_commit_leave_no_trace(
    database: AsyncDatabase[Document],
) -> None:
    documents = database.documents
    await documents.insert_one({"_id": "D0", "n": 0})

    async def failing_batch() -> None:
        async with database.client.start_session() as session, await session.start_transaction():
            batch = open_batch_documents(session, lambda _: None)
            await batch.stage(
                documents, ReplaceOne({"_id": "D0"}, {"_id": "D0", "n": 1}), one="D0", becomes={"n": 1}
            )
            await batch.flush()
            raise RuntimeError("the batch fails before its commit")

    with pytest.raises(RuntimeError):
        await failing_batch()
    assert await documents.find_one({"_id": "D0"}) == {"_id": "D0", "n": 0}


async def test_without_an_open_batch_reads_and_writes_go_straight_to_the_database(
    database: AsyncDatabase[Document],
) -> None:
    documents = database.documents
    direct = batch_documents(None)
    assert isinstance(direct, BatchDocuments)
    assert not direct.batched
    await direct.stage(documents, ReplaceOne({"_id": "D0"}, {"_id": "D0", "n": 3}, upsert=True), one="D0")
    assert await documents.find_one({"_id": "D0"}) == {"_id": "D0", "n": 3}
    assert (await direct.fetch(documents, ["D0", "D9"])) == {"D0": {"_id": "D0", "n": 3}, "D9": None}


async def test_the_hold_recheck_reads_a_bounded_slice_and_comes_round_to_every_hold(
    database: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validation_store, "HOLDS_PER_RECHECK", 2)
    store = ValidationStore(database)
    await store.ensure_indexes()
    await database.holds.insert_many(
        [
            {
                "_id": f"REQ-{n}",
                "customer_id": "CUST-1",
                "reason": "awaiting_reference_data",
                "waiting_for": [f"invoice:INV-{n}"],
                "event": None,
                "held_at": NOW + timedelta(minutes=n),
                "reject_after": NOW + timedelta(days=3),
            }
            for n in range(5)
        ]
    )
    slices = [[hold.request_id for hold in await store.all_holds()] for _ in range(6)]
    assert all(len(one) <= 2 for one in slices)  # before: every hold on every re-check
    # Each slice goes on from the last hold the one before read, until one comes back short.
    assert slices[:4] == [["REQ-0", "REQ-1"], ["REQ-1", "REQ-2"], ["REQ-2", "REQ-3"], ["REQ-3", "REQ-4"]]
    assert slices[4] == ["REQ-4"]
    assert slices[5] == ["REQ-0", "REQ-1"]  # round again


async def test_records_stored_without_numbers_get_them_at_start_read_by_the_index(
    counted: tuple[AsyncDatabase[Document], Commands],
) -> None:
    database, commands = counted
    invoices = database.invoices
    await invoices.insert_many(
        [
            {"_id": "INV-2026-0042", "invoice_id": "INV-2026-0042"},  # stored by an earlier release
            {"_id": "INV-2026-0043", "invoice_id": "INV-2026-0043", "number_keys": ["keep"]},
        ]
    )
    await ReferenceView(database, "invoices").ensure_number_keys("invoice_id")
    backfilled = await invoices.find_one({"_id": "INV-2026-0042"})
    assert backfilled is not None
    assert backfilled["number_keys"] == list(number_keys("INV-2026-0042"))
    assert (await invoices.find_one({"_id": "INV-2026-0043"}) or {})["number_keys"] == ["keep"]
    (looked_for,) = [found for name, found in commands.filters if name == "find"][:1]
    explained = await invoices.find(looked_for).explain()
    assert "COLLSCAN" not in str(explained["queryPlanner"]["winningPlan"])  # before: a scan


async def test_a_batch_and_its_session_are_let_go_once_its_transaction_is_over(
    database: AsyncDatabase[Document],
) -> None:
    documents = database.documents
    await documents.insert_one({"_id": "D0", "n": 0})

    async def one_batch() -> weakref.ref[BatchDocuments]:
        async with database.client.start_session() as session, await session.start_transaction():
            batch = open_batch_documents(session, lambda _: None)
            await batch.fetch(documents, ["D0"])
            return weakref.ref(batch)

    gone = await one_batch()
    gc.collect()
    assert gone() is None  # before: the registry's value held its key, and so both for ever


async def test_a_long_list_is_read_in_bounded_chunks_and_each_document_found_once(
    counted: tuple[AsyncDatabase[Document], Commands],
) -> None:
    # The local server matches every document found against the whole $in list: 200 ids in one
    # list cost it more than twice what four lists of 50 do.
    database, commands = counted
    documents = database.documents
    await documents.insert_many([{"_id": f"D{n:03}", "numbers": [f"N{n}", f"M{n}"]} for n in range(120)])
    wanted = [f"D{n:03}" for n in range(120)] + ["missing"]

    commands.filters.clear()
    found = await BatchDocuments(None, batched=False).fetch(documents, wanted)
    assert [one for one, document in found.items() if document is None] == ["missing"]
    lists = [query["_id"]["$in"] for name, query in commands.filters if name == "find"]
    assert [len(one) for one in lists] == [IN_CHUNK, IN_CHUNK, 121 - 2 * IN_CHUNK]

    # Each of a document's values in another chunk: it is still one document, under both values.
    commands.filters.clear()
    numbers = [f"N{n}" for n in range(60)] + [f"M{n}" for n in range(60)]
    by_number = await BatchDocuments(None, batched=False).fetch_by(documents, "numbers", numbers)
    assert len([name for name, _ in commands.filters if name == "find"]) == 3
    assert all(len(by_number[number]) == 1 for number in numbers)
    assert by_number["N7"][0] is by_number["M7"][0]
