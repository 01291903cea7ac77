"""MongoDB: the client factory and the ledger (processed keys + outbox) of a service.

We use PyMongo's own asyncio API (``AsyncMongoClient``), the official successor of Motor, which
reached end of life in May 2026.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from weakref import WeakKeyDictionary

from bson import ObjectId
from pydantic import SecretStr
from pymongo import ASCENDING, AsyncMongoClient, DeleteOne, InsertOne, ReplaceOne, UpdateOne, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WaitQueueTimeoutError,
    WriteConcernError,
    WTimeoutError,
)

from shared.delivery import OutboxBatch, OutgoingMessage

Document = dict[str, Any]

# Error labels MongoDB and the driver put on an error that says nothing about the message: the
# operation may succeed when tried again (or, for an unknown commit result, may already have).
_OUTAGE_LABELS = (
    "TransientTransactionError",
    "UnknownTransactionCommitResult",
    "RetryableWriteError",
    "NetworkError",
    "SystemOverloadedError",
)
# Server error codes of the same kind: shutting down, stepping down, no primary, time limits,
# write concern not satisfied, network trouble, a transaction the server no longer knows.
_OUTAGE_CODES = frozenset({6, 7, 50, 64, 89, 91, 189, 251, 262, 9001, 10107, 11600, 11602, 13435, 13436})
_PING_TIMEOUT_SECONDS = 5.0


def build_mongo_client(
    uri: str | SecretStr, *, listeners: Sequence[monitoring.CommandListener] = ()
) -> AsyncMongoClient[Document]:
    """A client with timezone-aware datetimes (everything we store is UTC).

    The URI may be a ``SecretStr`` (settings keep it as one: it carries the credentials); its
    options (``maxPoolSize``, for one) are the driver's. ``listeners`` see every command the
    client sends (a service counts them into its metrics: :mod:`shared.metrics`).
    """
    plain = uri.get_secret_value() if isinstance(uri, SecretStr) else uri
    return AsyncMongoClient(
        plain, tz_aware=True, serverSelectionTimeoutMS=10_000, event_listeners=list(listeners)
    )


class MongoLedgerTransaction:
    """One MongoDB transaction: view writes, processed marks and the outbox commit together.

    The events it emits are written as ONE outbox document (see :class:`MongoLedger`).
    """

    def __init__(self, database: AsyncDatabase[Document], session: AsyncClientSession) -> None:
        self._database = database
        self._session = session
        self._current_key = ""
        self._processed: list[str] = []
        self._outgoing: list[tuple[str, OutgoingMessage]] = []
        self._before_commit: list[Callable[[], Awaitable[None]]] = []
        self.committed_actions: list[Callable[[], None]] = []
        self.rollback_actions: list[Callable[[], None]] = []
        self._batch: OutboxBatch | None = None

    @property
    def session(self) -> AsyncClientSession:
        return self._session

    async def processed_among(self, keys: Sequence[str]) -> set[str]:
        found = find_in(self._database.processed_messages, "_id", keys, {"_id": 1}, session=self._session)
        return {str(document["_id"]) async for document in found}

    def begin(self, key: str) -> None:
        self._current_key = key

    def mark_processed(self, key: str) -> None:
        self._processed.append(key)

    def emit(self, message: OutgoingMessage) -> None:
        self._outgoing.append((self._current_key, message))

    def before_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        self._before_commit.append(action)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.committed_actions.append(action)

    def after_rollback(self, action: Callable[[], None]) -> None:
        self.rollback_actions.append(action)

    @property
    def emitted(self) -> list[OutgoingMessage]:
        """What was emitted, in order; once written, each names the outbox document that holds it."""
        if self._batch is None:
            return [message for _, message in self._outgoing]
        return [replace(message, batch=self._batch) for _, message in _distinct(self._outgoing)]

    async def write_ledger(self) -> None:
        """Write what was collected, the processed marks and the outbox: the last writes."""
        for action in self._before_commit:
            await action()
        now = datetime.now(UTC)
        if self._processed:
            await self._database.processed_messages.insert_many(
                [{"_id": key, "processed_at": now} for key in self._processed], session=self._session
            )
        if not self._outgoing:
            return
        outgoing = _distinct(self._outgoing)  # an event with the same stable id queued twice goes once
        batch_id = ObjectId()
        await self._database.outbox.insert_one(
            {
                "_id": batch_id,
                "created_at": now,
                "keys": sorted({message.key for _, message in outgoing}),
                "source_keys": sorted({source_key for source_key, _ in outgoing}),
                "events": [_event_document(source_key, message) for source_key, message in outgoing],
            },
            session=self._session,
        )
        self._batch = OutboxBatch(batch_id, len(outgoing))


def _distinct(outgoing: Sequence[tuple[str, OutgoingMessage]]) -> list[tuple[str, OutgoingMessage]]:
    """The first of each event id, in order."""
    seen: set[str] = set()
    distinct = []
    for source_key, message in outgoing:
        if message.message_id not in seen:
            seen.add(message.message_id)
            distinct.append((source_key, message))
    return distinct


def _event_document(source_key: str, message: OutgoingMessage) -> Document:
    return {
        "id": message.message_id,
        "source_key": source_key,
        "topic": message.topic,
        "key": message.key,
        "value": message.value.decode(),
    }


class MongoLedger:
    """The :class:`shared.delivery.Ledger` of a service, in its own database.

    ``processed_messages``: one document per idempotency key (pruned after the retention).

    ``outbox``: one document per transaction that emitted events (``keys`` and ``source_keys``:
    the record keys and the idempotency keys of its events, each indexed; ``events`` in commit
    order), deleted once every event in it is published. So the outbox holds only what has not
    gone out yet, a publish costs one delete by ``_id``, and there is neither a per-event
    "published" mark nor a TTL index (whose monitor on the local database server scans the whole
    collection every minute while holding its storage lock). An event published while others of
    its document are not is pulled out of the document.
    """

    def __init__(self, client: AsyncMongoClient[Document], database: AsyncDatabase[Document]) -> None:
        self._client = client
        self._database = database

    @property
    def database(self) -> AsyncDatabase[Document]:
        return self._database

    async def ensure_indexes(self) -> None:
        await _move_per_event_rows(self._database)
        # The sweeper's "older than the grace period, oldest first".
        await self._database.outbox.create_index("created_at")
        # What a request still has unpublished, read before each publish to keep its events in order.
        await self._database.outbox.create_index("keys")
        # What a redelivered message left unpublished.
        await self._database.outbox.create_index("source_keys")
        # For the retention of processed keys (prune_processed): oldest first, by an index.
        await self._database.processed_messages.create_index("processed_at")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MongoLedgerTransaction]:
        async with self._client.start_session() as session:
            transaction = MongoLedgerTransaction(self._database, session)
            try:
                async with await session.start_transaction():
                    yield transaction
                    await transaction.write_ledger()
            except BaseException:
                # Aborted, or a commit that failed or whose result is unknown (the connection
                # dropped with it): not known to be committed.
                for rolled_back in transaction.rollback_actions:
                    rolled_back()
                raise
            for action in transaction.committed_actions:  # committed: leaving the block commits
                action()

    async def unpublished(
        self,
        *,
        source_keys: Sequence[str] | None = None,
        keys: Sequence[str] | None = None,
        older_than: timedelta | None = None,
        limit: int | None = 500,
    ) -> list[OutgoingMessage]:
        query: Document = {}
        if source_keys is not None:
            query["source_keys"] = {"$in": sorted(set(source_keys))}
        if keys is not None:
            query["keys"] = {"$in": sorted(set(keys))}
        if older_than is not None:
            query["created_at"] = {"$lt": datetime.now(UTC) - older_than}
        # Commit order: a transaction's events keep their order in its document. Documents of
        # different replicas are ordered by their clocks, which is as good as a request needs:
        # one request's consecutive events come from causally ordered steps.
        cursor = self._database.outbox.find(query).sort([("created_at", 1), ("_id", 1)])
        wanted_sources = set(source_keys) if source_keys is not None else None
        wanted_keys = set(keys) if keys is not None else None
        found: list[OutgoingMessage] = []
        async for batch in cursor:
            events = batch.get("events", [])
            holder = OutboxBatch(batch["_id"], len(events))
            found += [
                OutgoingMessage(
                    message_id=event["id"],
                    topic=event["topic"],
                    key=event["key"],
                    value=event["value"].encode(),
                    committed_at=batch.get("created_at"),
                    batch=holder,
                )
                for event in events
                if (wanted_sources is None or event.get("source_key") in wanted_sources)
                and (wanted_keys is None or event["key"] in wanted_keys)
            ]
            if limit is not None and len(found) >= limit:
                break  # whole documents only: the limit is a size of chunk, not a cut
        return found

    async def unpublished_count(self) -> int:
        """Outbox documents not yet published (each one transaction's events): a metadata count."""
        return await self._database.outbox.estimated_document_count()

    def is_unavailable(self, error: BaseException) -> bool:
        """Whether ``error`` (or an error it was raised from) says the database is in trouble.

        Network trouble and no server to select; time-outs (the driver's, the server's time
        limits, a write concern's); write-concern errors; a transaction MongoDB calls transient or
        whose commit result is unknown; a primary stepping down or shutting down. None of these
        says anything about the message, so it must come back rather than be dead-lettered.
        """
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if _is_outage(current):
                return True
            current = current.__cause__ or current.__context__
        return False

    async def answers(self) -> bool:
        """Whether the database server answers a ping within a few seconds."""
        try:
            async with asyncio.timeout(_PING_TIMEOUT_SECONDS):
                await self._client.admin.command("ping")
        except Exception:  # noqa: BLE001 - any failure means it does not answer
            return False
        return True

    async def prune_processed(
        self, *, older_than: timedelta, chunk_size: int = 500, max_chunks: int = 200
    ) -> int:
        """Forget processed keys recorded more than ``older_than`` ago; returns how many.

        An explicit, indexed delete in chunks of ``chunk_size`` (oldest first), not a TTL index:
        the local database server's TTL monitor scans the whole collection every minute while it
        holds its storage lock. At most ``max_chunks`` chunks per call, so one run stays short;
        the next run goes on where this one stopped.
        """
        cutoff = datetime.now(UTC) - older_than
        removed = 0
        for _ in range(max_chunks):
            cursor = (
                self._database.processed_messages.find({"processed_at": {"$lt": cutoff}}, {"_id": 1})
                .sort("processed_at", ASCENDING)
                .limit(chunk_size)
            )
            keys = [document["_id"] async for document in cursor]
            if not keys:
                break
            result = await self._database.processed_messages.delete_many({"_id": {"$in": keys}})
            removed += result.deleted_count
            if len(keys) < chunk_size:
                break
        return removed

    async def set_aside(self, message: OutgoingMessage, *, reason: str) -> None:
        """Move an entry the broker refuses for good to ``outbox_refused``, with the reason.

        Kept there (with its bytes, under its event id) for an operator; the outbox moves on to
        the entries behind it.
        """
        if message.batch is None:
            return
        async with self._client.start_session() as session, await session.start_transaction():
            batch = await self._database.outbox.find_one({"_id": message.batch.batch_id}, session=session)
            event = next(
                (event for event in (batch or {}).get("events", []) if event["id"] == message.message_id),
                None,
            )
            if batch is None or event is None:
                return
            stored = {key: value for key, value in event.items() if key != "id"}
            await self._database.outbox_refused.replace_one(
                {"_id": message.message_id},
                {
                    "_id": message.message_id,
                    **stored,
                    "created_at": batch.get("created_at"),
                    "reason": reason,
                    "refused_at": datetime.now(UTC),
                },
                upsert=True,
                session=session,
            )
            await self._take_out(message.batch.batch_id, [message.message_id], session=session)

    async def mark_published(self, messages: Sequence[OutgoingMessage]) -> None:
        """Delete each outbox document all of whose events went out; pull the others' events out.

        The common case, a transaction's events all published by the process that committed
        them, is one delete by ``_id``.
        """
        published: dict[Any, set[str]] = {}
        known: dict[Any, int] = {}
        for message in messages:
            if message.batch is not None:
                published.setdefault(message.batch.batch_id, set()).add(message.message_id)
                known[message.batch.batch_id] = message.batch.events
        whole = [batch_id for batch_id, ids in published.items() if len(ids) >= known[batch_id]]
        if len(whole) == 1:
            await self._database.outbox.delete_one({"_id": whole[0]})
        elif whole:
            await self._database.outbox.delete_many({"_id": {"$in": whole}})
        for batch_id, ids in published.items():
            if len(ids) < known[batch_id]:
                await self._take_out(batch_id, sorted(ids))

    async def _take_out(
        self, batch_id: Any, message_ids: Sequence[str], *, session: AsyncClientSession | None = None
    ) -> None:
        """Pull events out of one outbox document, and delete the document once it holds none."""
        outbox = self._database.outbox
        await outbox.update_one(
            {"_id": batch_id}, {"$pull": {"events": {"id": {"$in": list(message_ids)}}}}, session=session
        )
        # By _id alone: the local server's planner scans the collection for _id with another field.
        left = await outbox.find_one({"_id": batch_id}, {"events.id": 1}, session=session)
        if left is not None and not left.get("events"):  # events only ever leave a document
            await outbox.delete_one({"_id": batch_id}, session=session)


_PER_EVENT_INDEX = "published_1_created_at_1_position_1"


async def _move_per_event_rows(database: AsyncDatabase[Document]) -> None:
    """Earlier releases kept one outbox row per event, marked ``published`` and dropped by a TTL
    index a week later. The unpublished rows of one transaction (they share its commit time)
    become one outbox document, in their order, with a stable ``_id`` (two replicas starting at
    once write it once); the published rows go, and so do the old indexes. Only where the old
    indexes are: once moved, nothing is left to do."""
    outbox = database.outbox
    indexes = await outbox.index_information()
    if _PER_EVENT_INDEX not in indexes:
        return
    transactions: dict[Any, list[Document]] = {}
    cursor = outbox.find({"published": False}).sort([("published", 1), ("created_at", 1), ("position", 1)])
    async for row in cursor:
        transactions.setdefault(row.get("created_at"), []).append(row)
    for committed_at, rows in transactions.items():
        await outbox.replace_one(
            {"_id": f"per-event:{rows[0]['_id']}"},
            {
                "created_at": committed_at or datetime.now(UTC),
                "keys": sorted({row["key"] for row in rows}),
                "source_keys": sorted({row.get("source_key", "") for row in rows}),
                "events": [
                    {
                        "id": row["_id"],
                        "source_key": row.get("source_key", ""),
                        "topic": row["topic"],
                        "key": row["key"],
                        "value": row["value"],
                    }
                    for row in rows
                ],
            },
            upsert=True,
        )
        await outbox.delete_many({"_id": {"$in": [row["_id"] for row in rows]}})
    await outbox.delete_many({"published": True})
    for name in indexes:
        if name not in {"_id_", "created_at_1", "keys_1", "source_keys_1"}:
            await outbox.drop_index(name)


def _is_outage(error: BaseException) -> bool:
    if isinstance(error, ConnectionFailure | ExecutionTimeout | WTimeoutError | WaitQueueTimeoutError):
        return True
    if isinstance(error, WriteConcernError | TimeoutError | ConnectionError):
        return True
    if not isinstance(error, PyMongoError):
        return False
    if error.timeout or any(error.has_error_label(label) for label in _OUTAGE_LABELS):
        return True
    if isinstance(error, BulkWriteError):
        return bool(error.details.get("writeConcernErrors"))
    return isinstance(error, OperationFailure) and error.code in _OUTAGE_CODES


class MongoLease:
    """A lease in the service's own database (``leases``): which replica runs a singleton job.

    Holding it is one conditional upsert by ``_id``: it matches when the lease is ours or has
    expired, and otherwise the upsert collides with the existing document (duplicate key), which
    means another replica holds it. The collection stays tiny (one document per job), which
    matters here: the local database server's findAndModify scans the whole collection.
    Expiry compares the replicas' clocks: keep ``ttl`` well above their skew.
    """

    def __init__(
        self,
        database: AsyncDatabase[Document],
        name: str,
        *,
        holder: str,
        ttl: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._leases = database.leases
        self.name = name
        self.holder = holder
        self._ttl = ttl
        self._clock = clock

    async def hold(self) -> bool:
        """Take the lease or renew it for ``ttl``; whether this replica holds it now."""
        now = self._clock()
        try:
            await self._leases.update_one(
                {"_id": self.name, "$or": [{"holder": self.holder}, {"expires_at": {"$lt": now}}]},
                {"$set": {"holder": self.holder, "expires_at": now + self._ttl, "renewed_at": now}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    async def release(self) -> None:
        """Give the lease up (a clean stop), so another replica need not wait for it to expire."""
        await self._leases.delete_one({"_id": self.name, "holder": self.holder})


# Batch prefetch and batched writes ---------------------------------------------------------------

IN_CHUNK = 50
"""Most values in one ``$in``. The local database server matches every document it finds against
the whole list, so a list of n costs it about n squared: 200 ids took 24 ms of its CPU in one
``$in`` and 10 ms in four of 50 (docs/benchmark.md). At a batch of 50 or fewer it is still one
statement."""


async def find_in(
    collection: AsyncCollection[Document],
    field: str,
    values: Iterable[Any],
    projection: Document | None = None,
    *,
    session: AsyncClientSession | None = None,
) -> AsyncIterator[Document]:
    """The documents whose ``field`` holds one of ``values``: one query per :data:`IN_CHUNK` of
    them (an equality for a single one)."""
    wanted = list(dict.fromkeys(values))
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        query = {field: chunk[0]} if len(chunk) == 1 else {field: {"$in": chunk}}
        async for document in collection.find(query, projection, session=session):
            yield document


_UNKNOWN: Final = object()  # an id whose document a staged partial update changed: read it again


class BatchDocuments:
    """What one transaction read and wrote, by collection and ``_id``: one batch's unit of work.

    A store opens it for a batch (:func:`open_batch_documents`, from the batch's prefetch hook):
    the documents the batch will need are read with one ``$in`` per collection
    (:meth:`fetch`, in chunks of :data:`IN_CHUNK`), each message then reads them here, and
    the writes of the whole batch are staged (:meth:`stage`) and sent as one ordered
    ``bulk_write`` per collection just before the commit. A staged write is what later reads of
    that id see, so a message sees what an earlier message of its batch wrote, exactly as if each
    write had gone out at once; and it is the same transaction, so the batch still commits whole
    or not at all (a conflicting write of another transaction fails the batch at the flush, before
    the commit, instead of at the statement).

    Without an open batch (a timer's transaction, a message handled alone by a caller that did not
    prefetch), :func:`batch_documents` gives a pass-through: reads go to the database and writes
    out at once.
    """

    def __init__(self, session: AsyncClientSession | None, *, batched: bool) -> None:
        # Weakly: the registry of open batches is keyed by the session, weakly, and a value that
        # held its key would keep every batch's session and documents alive for ever.
        self._session_ref = weakref.ref(session) if session is not None else None
        self._batched = batched
        self._known: dict[str, dict[Any, Any]] = {}
        self._by_field: dict[tuple[str, str], dict[Any, list[Document]]] = {}
        self._staged: dict[str, tuple[AsyncCollection[Document], list[Any]]] = {}

    @property
    def batched(self) -> bool:
        return self._batched

    @property
    def _session(self) -> AsyncClientSession | None:
        return self._session_ref() if self._session_ref is not None else None

    async def fetch(
        self, collection: AsyncCollection[Document], ids: Iterable[Any]
    ) -> dict[Any, Document | None]:
        """The documents of ``ids`` (None: none stored), read once per batch."""
        wanted = list(dict.fromkeys(ids))
        known = self._known.setdefault(collection.name, {})
        if any(known.get(one) is _UNKNOWN for one in wanted):
            await self._flush(collection.name)
            for one in wanted:
                if known.get(one) is _UNKNOWN:
                    del known[one]
        results: dict[Any, Document | None] = {one: known[one] for one in wanted if one in known}
        missing = [one for one in wanted if one not in known]
        found: dict[Any, Document | None] = dict.fromkeys(missing)
        async for document in find_in(collection, "_id", missing, session=self._session):
            found[document["_id"]] = document
        results.update(found)
        if self._batched:
            known.update(found)
        return {one: results[one] for one in wanted}

    async def fetch_one(self, collection: AsyncCollection[Document], one: Any) -> Document | None:
        return (await self.fetch(collection, [one]))[one]

    async def fetch_by(
        self, collection: AsyncCollection[Document], field: str, values: Iterable[Any]
    ) -> dict[Any, list[Document]]:
        """The documents whose ``field`` (a single value or an array) holds each of ``values``.

        For collections this transaction does not write (reference views): cached by value, and
        each document found is known by its ``_id`` too, so a later :meth:`fetch` of it costs no
        query (a lookup by number that found the document named exactly, say).
        """
        wanted = list(dict.fromkeys(values))
        known = self._by_field.setdefault((collection.name, field), {})
        missing = [one for one in wanted if one not in known]
        found: dict[Any, list[Document]] = {one: [] for one in missing}
        by_id: dict[Any, Document] = {}
        async for document in find_in(collection, field, missing, session=self._session):
            if document["_id"] in by_id:
                continue  # found again through another of its values, in another chunk
            by_id[document["_id"]] = document
            held = document.get(field)
            for value in held if isinstance(held, list) else [held]:
                if value in found:
                    found[value].append(document)
        if self._batched:
            known.update(found)
            known_by_id = self._known.setdefault(collection.name, {})
            for one, document in by_id.items():
                known_by_id.setdefault(one, document)  # what this batch wrote stays what it reads
            return {one: known[one] for one in wanted}
        return found

    async def stage(
        self,
        collection: AsyncCollection[Document],
        operation: InsertOne[Document] | ReplaceOne[Document] | UpdateOne | DeleteOne,
        *,
        one: Any,
        becomes: Document | object | None = _UNKNOWN,
    ) -> None:
        """Write ``operation`` on the document ``one`` before the commit (at once if not batched).

        ``becomes``: the document as the write leaves it (None: deleted); left out for a partial
        update, the next read of ``one`` sends the staged writes first and reads it again.
        """
        if not self._batched:
            await collection.bulk_write([operation], session=self._session)
            return
        self._staged.setdefault(collection.name, (collection, []))[1].append(operation)
        self._known.setdefault(collection.name, {})[one] = becomes

    async def flush(self, collection: AsyncCollection[Document] | None = None) -> None:
        """Send the staged writes (of ``collection``, or of all), one ordered ``bulk_write`` per
        collection: before a query other than by ``_id`` on a collection the batch writes."""
        for name in [collection.name] if collection is not None else list(self._staged):
            await self._flush(name)

    async def _flush(self, name: str) -> None:
        staged = self._staged.pop(name, None)
        if staged is not None and staged[1]:
            collection, operations = staged
            await collection.bulk_write(operations, ordered=True, session=self._session)


_open_batches: WeakKeyDictionary[AsyncClientSession, BatchDocuments] = WeakKeyDictionary()


def open_batch_documents(
    session: AsyncClientSession, before_commit: Callable[[Callable[[], Awaitable[None]]], None]
) -> BatchDocuments:
    """The batch unit of work of ``session``'s transaction, opened now (its writes flushed by
    ``before_commit``, the transaction's hook) or as opened before."""
    opened = _open_batches.get(session)
    if opened is None:
        opened = _open_batches[session] = BatchDocuments(session, batched=True)
        before_commit(opened.flush)
    return opened


def batch_documents(session: AsyncClientSession | None) -> BatchDocuments:
    """The batch unit of work open on ``session``, or a pass-through (no batch was opened)."""
    opened = _open_batches.get(session) if session is not None else None
    return opened if opened is not None else BatchDocuments(session, batched=False)
