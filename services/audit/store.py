"""Audit's store: an entry per record, numbered in order per request. Entries are only added."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import Document

UNATTRIBUTED = "__unattributed__"


class AuditStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._entries = database.entries
        self._sequences = database.sequences

    async def ensure_indexes(self) -> None:
        await self._entries.create_index([("request_id", ASCENDING), ("sequence", ASCENDING)])
        await self._entries.create_index(
            [("topic", ASCENDING), ("partition", ASCENDING), ("offset", ASCENDING)], unique=True
        )

    async def append_many(self, entries: list[dict[str, Any]], session: AsyncClientSession) -> None:
        """Add entries, in order, each numbered as the next of its request (or of the unattributed).

        One counter update per request in the batch and one insert for all entries: the local
        database server runs one statement at a time, and audit writes the most.
        """
        by_request: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            by_request.setdefault(entry["request_id"] or UNATTRIBUTED, []).append(entry)
        numbered: list[dict[str, Any]] = []
        for request_id, its_entries in by_request.items():
            counter = await self._sequences.find_one_and_update(
                {"_id": request_id},
                {"$inc": {"last": len(its_entries)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            assert counter is not None  # upsert with ReturnDocument.AFTER always returns the document
            first = int(counter["last"]) - len(its_entries) + 1
            numbered.extend({**entry, "sequence": first + n} for n, entry in enumerate(its_entries))
        await self._entries.insert_many(numbered, ordered=True, session=session)

    async def trail(self, request_id: str) -> list[Document]:
        """Every entry of a request, in order."""
        cursor = self._entries.find({"request_id": request_id}, {"_id": 0}).sort("sequence", ASCENDING)
        return [entry async for entry in cursor]
