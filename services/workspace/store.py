"""The workspace's own view in MongoDB (database ``crs_workspace``), built only from the topics.

``requests``: one document per request (see :mod:`services.workspace.domain`), its ``summary``
indexed for the queues. ``emails``: the emails of ``email.requests.v1`` by Message-ID, so a reply
intake added to a request can be read in full on the request's page.

Writes happen only in the consumer's transactions: a batch reads the documents it concerns with
one ``$in`` query per 50 requests (``shared.mongo.IN_CHUNK``) and writes those that changed with
one bulk write, just before the commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from pymongo import ASCENDING, ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import Document, find_in

VIEW_COLLECTIONS = ("requests", "emails", "refusals")
"""The collections that make the view (the rest of the database is the delivery ledger)."""

_UNUSED_INDEXES = ("summary.open_1", "summary.created_at_1")
"""Indexes an earlier release made that no query reads: dropped at start."""


class WorkspaceStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.database = database
        self._requests = database.requests
        self._emails = database.emails
        self._refusals = database.refusals

    async def ensure_indexes(self) -> None:
        # Only the indexes a query uses (tests/integration/query_shapes.toml): every write of a
        # request's document rewrites its entry in each of them.
        await self._requests.create_index([("summary.queue", ASCENDING), ("summary.open", ASCENDING)])
        await self._requests.create_index([("summary.status", ASCENDING)])
        await self._refusals.create_index([("request_id", ASCENDING)])
        existing = await self._requests.index_information()
        for unused in _UNUSED_INDEXES:
            if unused in existing:
                await self._requests.drop_index(unused)

    # -- written by the consumer ----------------------------------------------------------------

    async def documents(
        self, request_ids: Iterable[str], *, session: AsyncClientSession
    ) -> dict[str, Document]:
        found = find_in(self._requests, "_id", sorted(set(request_ids)), session=session)
        return {str(document["_id"]): document async for document in found}

    async def save(self, documents: Sequence[Document], *, session: AsyncClientSession) -> None:
        # Whole documents replaced, not ``$set`` of the changed fields: the local server logs an
        # update by working out its difference from the old document, which costs it more than
        # taking the new one whole (measured: no less database CPU with ``$set``).
        if documents:
            await self._requests.bulk_write(
                [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in documents],
                ordered=True,
                session=session,
            )

    async def save_emails(self, emails: Sequence[Document], *, session: AsyncClientSession) -> None:
        if emails:
            await self._emails.bulk_write(
                [ReplaceOne({"_id": email["_id"]}, email, upsert=True) for email in emails],
                ordered=True,
                session=session,
            )

    async def save_refusals(self, refusals: Sequence[Document]) -> None:
        """Refused actions, each under its action and the refusing service: saving again changes nothing."""
        if refusals:
            await self._refusals.bulk_write(
                [ReplaceOne({"_id": refusal["_id"]}, refusal, upsert=True) for refusal in refusals],
                ordered=False,
            )

    # -- read by the HTTP app -------------------------------------------------------------------

    async def refusals_of(self, request_id: str) -> list[Document]:
        found = self._refusals.find({"request_id": request_id})
        return sorted([refusal async for refusal in found], key=lambda refusal: str(refusal["refused_at"]))

    async def request(self, request_id: str) -> Document | None:
        return await self._requests.find_one({"_id": request_id})

    async def summary(self, request_id: str) -> Document | None:
        found = await self._requests.find_one({"_id": request_id}, {"summary": 1})
        return found["summary"] if found and found.get("summary") else None

    async def queues_of(self, request_ids: Iterable[str]) -> dict[str, str | None]:
        """The queue of each of these requests the view has (one read per 50, for live updates)."""
        found = find_in(self._requests, "_id", request_ids, {"summary.queue": 1})
        return {doc["_id"]: (doc.get("summary") or {}).get("queue") async for doc in found}

    async def summaries(
        self, *, queues: Iterable[str] | None = None, open_only: bool = False, status: str | None = None
    ) -> list[Document]:
        """The summaries of requests in ``queues`` (None: every request)."""
        # One indexed field in the query, the others checked here: given the queues with the open
        # flag, the local server's planner reads no index at all.
        query: dict[str, Any] = {}
        if queues is not None:
            query["summary.queue"] = {"$in": sorted(set(queues))}
        elif status:
            query["summary.status"] = status
        elif open_only:
            query["summary.open"] = True
        cursor = self._requests.find(query, {"summary": 1, "statuses": 1})
        return [
            {**found["summary"], "_statuses": found.get("statuses", [])}
            async for found in cursor
            if found.get("summary")
            and (not open_only or found["summary"].get("open") is True)
            and (not status or found["summary"].get("status") == status)
        ]

    async def emails(self, message_ids: Iterable[str]) -> dict[str, Document]:
        found = find_in(self._emails, "_id", sorted(set(message_ids)))
        return {str(document["_id"]): document async for document in found}

    async def changed_requests(self) -> AsyncIterator[str | None]:
        """None once following, then the id of every request document written (a change stream)."""
        async with await self._requests.watch([{"$project": {"documentKey": 1}}]) as stream:
            yield None
            async for change in stream:
                key = change.get("documentKey") or {}
                if "_id" in key:
                    yield str(key["_id"])

    async def refused_requests(self) -> AsyncIterator[str | None]:
        """None once following, then the request of every refused action stored (a change stream)."""
        async with await self._refusals.watch([{"$project": {"fullDocument.request_id": 1}}]) as stream:
            yield None
            async for change in stream:
                request_id = (change.get("fullDocument") or {}).get("request_id")
                if isinstance(request_id, str):
                    yield request_id

    async def dump(self) -> dict[str, list[Document]]:
        """The whole view, sorted by id: what a rebuild must reproduce."""
        return {
            name: [doc async for doc in self.database[name].find({}).sort("_id", 1)]
            for name in VIEW_COLLECTIONS
        }
