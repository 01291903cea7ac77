"""Audit's store: an entry per record, numbered in order per request. Entries are only added."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import Document


class AuditStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._entries = database.entries
        self._sequences = database.sequences

    async def ensure_indexes(self) -> None:
        await self._entries.create_index([("request_id", ASCENDING), ("sequence", ASCENDING)])
        await self._entries.create_index(
            [("topic", ASCENDING), ("partition", ASCENDING), ("offset", ASCENDING)], unique=True
        )

    async def append(self, entry: dict[str, Any], *, session: AsyncClientSession) -> int:
        """Add an entry as the next of its request (or of the unattributed ones)."""
        counter = await self._sequences.find_one_and_update(
            {"_id": entry["request_id"] or "__unattributed__"},
            {"$inc": {"last": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        assert counter is not None  # upsert with ReturnDocument.AFTER always returns the document
        sequence = int(counter["last"])
        await self._entries.insert_one({**entry, "sequence": sequence}, session=session)
        return sequence

    async def trail(self, request_id: str) -> list[Document]:
        """Every entry of a request, in order."""
        cursor = self._entries.find({"request_id": request_id}, {"_id": 0}).sort("sequence", ASCENDING)
        return [entry async for entry in cursor]
