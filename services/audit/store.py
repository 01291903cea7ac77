"""Audit's store: an entry per record, numbered in order per request. Entries are only added."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, UpdateOne
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

        A batch costs three statements whatever its size: read the batch's counters, write them,
        insert the entries. (Not ``find_one_and_update``: the local database server answers it by
        scanning the whole collection.) Two replicas numbering the same request conflict in their
        transactions and one retries, so numbers are never given twice.
        """
        by_request: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            by_request.setdefault(entry["request_id"] or UNATTRIBUTED, []).append(entry)
        last = {
            counter["_id"]: int(counter["last"])
            async for counter in self._sequences.find({"_id": {"$in": list(by_request)}}, session=session)
        }
        numbered: list[dict[str, Any]] = []
        for request_id, its_entries in by_request.items():
            first = last.get(request_id, 0) + 1
            numbered.extend({**entry, "sequence": first + n} for n, entry in enumerate(its_entries))
            last[request_id] = first + len(its_entries) - 1
        await self._sequences.bulk_write(
            [
                UpdateOne({"_id": request_id}, {"$set": {"last": last[request_id]}}, upsert=True)
                for request_id in by_request
            ],
            ordered=True,
            session=session,
        )
        await self._entries.insert_many(numbered, ordered=True, session=session)
