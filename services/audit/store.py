"""Audit's store: entries only ever added, each sealed into its request's chain and the global one.

The chains themselves (numbering, links, hashes, checking) are :mod:`services.audit.chain`; this
module only reads and writes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.audit.chain import FINGERPRINT_FIELD, UNATTRIBUTED, Head, chain_of, seal
from shared.mongo import Document

GLOBAL_HEAD_ID = 0
"""The ``_id`` of the global chain's head among the request heads.

Every other head is keyed by a request id, which is a string (or ``chain.UNATTRIBUTED``); an integer
can never be mistaken for one, whatever request id a publisher makes up.
"""


_POSITION_ONLY_INDEX = "topic_1_partition_1_offset_1"


class AuditStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._entries = database.entries
        # One head per chain: {"_id": request id, "last": its last sequence, "hash": that entry's
        # hash}, and the global chain's under GLOBAL_HEAD_ID.
        self._heads = database.sequences

    async def ensure_indexes(self) -> None:
        await self._entries.create_index([("request_id", ASCENDING), ("sequence", ASCENDING)])
        # One entry per record. A position alone does not name a record: a topic created again
        # numbers from 0 again, so its fingerprint is part of the key. (Stores from before had a
        # unique index on the position alone, which would refuse the new records: it goes.)
        if _POSITION_ONLY_INDEX in await self._entries.index_information():
            await self._entries.drop_index(_POSITION_ONLY_INDEX)
        await self._entries.create_index(
            [
                ("topic", ASCENDING),
                ("partition", ASCENDING),
                ("offset", ASCENDING),
                (FINGERPRINT_FIELD, ASCENDING),
            ],
            unique=True,
        )
        # Unique: even a bug that read a stale global head could not fork the global chain.
        await self._entries.create_index("global_sequence", unique=True, sparse=True)

    async def append_many(self, entries: list[dict[str, Any]], session: AsyncClientSession) -> None:
        """Add entries, in order, sealed after the current heads of their chains.

        A batch costs three statements whatever its size: read the heads of the batch's chains and
        the global head (one ``$in``), write them (one bulk write), insert the entries. (Not
        ``find_one_and_update``: the local database server answers it by scanning the whole
        collection.)

        Why the chains cannot fork: audit has one subscriber for every request topic, and a
        subscriber handles one batch at a time, so within a process batches are sealed one after
        another. Two replicas both write the global head in their transactions; MongoDB lets only
        the first commit and aborts the other with a write conflict, a transient transaction error
        that the delivery layer retries (and never dead-letters) with the heads read afresh. So
        every entry links to the entry committed just before it, and the unique index on
        ``global_sequence`` refuses any second entry with the same number.
        """
        chains = list(dict.fromkeys(chain_of(entry) for entry in entries))
        heads: dict[str, Head] = {}
        global_head = Head()
        async for head in self._heads.find({"_id": {"$in": [*chains, GLOBAL_HEAD_ID]}}, session=session):
            current = Head(int(head["last"]), head.get("hash"))
            if head["_id"] == GLOBAL_HEAD_ID:
                global_head = current
            else:
                heads[str(head["_id"])] = current
        sealed = seal(entries, heads=heads, global_head=global_head)
        await self._heads.bulk_write(
            [
                UpdateOne({"_id": chain}, {"$set": {"last": head.sequence, "hash": head.hash}}, upsert=True)
                for chain, head in [*sealed.heads.items(), (GLOBAL_HEAD_ID, sealed.global_head)]
            ],
            ordered=True,
            session=session,
        )
        await self._entries.insert_many(sealed.entries, ordered=True, session=session)

    async def entries_of(self, chain: str) -> list[Document]:
        """The entries of a request's chain (or of ``UNATTRIBUTED``) in the chain's order."""
        query = {"request_id": {"$in": [None, UNATTRIBUTED]} if chain == UNATTRIBUTED else chain}
        return [entry async for entry in self._entries.find(query).sort("sequence", 1)]

    async def every_entry(self, *, through: int | None = None) -> AsyncIterator[Document]:
        """Every entry in the global chain's order, streamed; with ``through``, those numbered up
        to it (and any entry with no number at all, which verification reports as not sealed)."""
        query: Document = (
            {}
            if through is None
            else {"$or": [{"global_sequence": {"$lte": through}}, {"global_sequence": {"$exists": False}}]}
        )
        async for entry in self._entries.find(query).sort("global_sequence", 1):
            yield entry

    async def global_head(self) -> Head | None:
        """The global chain's head as it is now."""
        found = await self._heads.find_one({"_id": GLOBAL_HEAD_ID})
        return None if found is None else Head(int(found["last"]), found.get("hash"))

    async def head_of(self, chain: str) -> Head | None:
        """The recorded head of a request's chain (or of ``UNATTRIBUTED``)."""
        found = await self._heads.find_one({"_id": chain})
        return None if found is None else Head(int(found["last"]), found.get("hash"))

    async def heads(self) -> tuple[dict[str, Head], Head | None]:
        """Every request chain's head, and the global chain's."""
        requests: dict[str, Head] = {}
        global_head: Head | None = None
        async for found in self._heads.find({}):
            head = Head(int(found["last"]), found.get("hash"))
            if found["_id"] == GLOBAL_HEAD_ID:
                global_head = head
            else:
                requests[str(found["_id"])] = head
        return requests, global_head
