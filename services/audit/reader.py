"""Audit's read API: what others may read of audit's entries, and how.

Audit's database belongs to audit. Whoever needs its history (the `crs` tool's `record`, `trace`,
`stats`, `requests`, `audit verify` and `audit export`; later the workspace, whose HTTP API will be
the other read path) reads it through :class:`AuditReader`, never through the collections: the
layout of the store can then change without breaking them.

Reads only. Each method is one query (or one stream); the chain checks
(:mod:`services.audit.chain`) need the heads and entries in a given order, which the methods'
docstrings say.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.audit.chain import Head
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from shared.identity import crm_request_id, email_request_id, normalize_message_id
from shared.mongo import Document
from shared.topics import REQUEST_UPDATED

CONNECT_TIMEOUT_SECONDS = 3.0
"""How long a reader waits for the database server before it gives up: an operator's command
should say "the database does not answer" within seconds, not after pymongo's 30."""

SUMMARY_FIELDS = ("request_id", "topic", "published_at", "recorded_at", "sequence", "customer_id", "text")
"""The fields of an entry that summaries of requests (stats, listings) need."""


def default_database() -> str:
    """Audit's database as the service itself names it (``CRS_AUDIT_DATABASE``, else ``crs_audit``)."""
    return AuditSettings().database


class AuditReader:
    """Reads audit's entries and chain heads; never writes."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.database_name = database.name
        self._entries = database.entries
        # The chain reads go through the store itself, so there is one definition of what a head
        # and a chain's order are.
        self._store = AuditStore(database)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        mongodb_uri: str,
        database: str | None = None,
        *,
        timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
    ) -> AsyncIterator[AuditReader]:
        """A reader of audit's database on ``mongodb_uri`` for the length of the block.

        An unreachable server raises pymongo's ``ServerSelectionTimeoutError`` (a
        ``ConnectionFailure``) after ``timeout_seconds``.
        """
        timeout_ms = int(timeout_seconds * 1000)
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            mongodb_uri,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
        )
        try:
            yield cls(client[database or default_database()])
        finally:
            await client.close()

    # -- chains ------------------------------------------------------------------------------

    async def global_head(self) -> Head | None:
        """The global chain's head as it is now."""
        return await self._store.global_head()

    async def head_of(self, request_id: str) -> Head | None:
        """The recorded head of a request's chain."""
        return await self._store.head_of(request_id)

    async def heads(self) -> tuple[dict[str, Head], Head | None]:
        """Every request chain's head, and the global chain's."""
        return await self._store.heads()

    async def entries_of(self, request_id: str) -> list[Document]:
        """A request's entries in its chain's order. Read the heads first when checking the chain."""
        return await self._store.entries_of(request_id)

    def every_entry(self, *, through: int | None = None) -> AsyncIterator[Document]:
        """Every entry in the global chain's order, streamed (up to ``through`` when given)."""
        return self._store.every_entry(through=through)

    # -- requests ----------------------------------------------------------------------------

    async def knows(self, request_id: str) -> bool:
        """Whether audit has recorded anything of ``request_id``."""
        return await self._entries.find_one({"request_id": request_id}, {"_id": 1}) is not None

    async def request_of_source(self, source_id: str) -> str | None:
        """The request a CRM case id or an email Message-ID belongs to, if audit has seen it.

        A case id and an email that opened a request map to it by the shared id rules; an email
        that intake added to an earlier request as a reply maps to that request (through the
        ``EmailReplyAdded`` audit recorded).
        """
        candidates = [crm_request_id(source_id.strip())]
        normalized = normalize_message_id(source_id)
        if normalized:
            candidates.append(email_request_id(normalized))
        for candidate in candidates:
            if await self.knows(candidate):
                return candidate
        async for entry in self._entries.find({"topic": REQUEST_UPDATED}, {"request_id": 1, "text": 1}):
            try:
                reply = json.loads(entry.get("text") or "")
            except json.JSONDecodeError:
                continue
            if (
                isinstance(reply, dict)
                and normalize_message_id(str(reply.get("message_id") or "")) == normalized
            ):
                return str(entry["request_id"])
        return None

    def entries_on(
        self, topics: Iterable[str], fields: Sequence[str] = SUMMARY_FIELDS
    ) -> AsyncIterator[Document]:
        """Every entry recorded from ``topics`` (only ``fields`` of each), streamed in no set order."""
        return aiter(self._entries.find({"topic": {"$in": list(topics)}}, dict.fromkeys(fields, 1)))

    # -- windows -----------------------------------------------------------------------------

    async def count_recorded_between(self, start: datetime, end: datetime) -> int:
        """How many entries audit recorded in [start, end)."""
        return await self._entries.count_documents(_recorded_between(start, end))

    def recorded_between(self, start: datetime, end: datetime) -> AsyncIterator[Document]:
        """The entries recorded in [start, end), in the global chain's order, streamed."""
        return aiter(self._entries.find(_recorded_between(start, end), {"_id": 0}).sort("global_sequence", 1))


def _recorded_between(start: datetime, end: datetime) -> dict[str, Any]:
    return {"recorded_at": {"$gte": start, "$lt": end}}
