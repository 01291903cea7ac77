"""Intake's own view: one document per request, with the emails that belong to it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, InsertOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.delivery import LedgerTransaction
from shared.mongo import Document, batch_documents, open_batch_documents


class IntakeStore:
    """Requests as captured, in the intake service's database."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._requests = database.requests

    async def ensure_indexes(self) -> None:
        await self._requests.create_index([("email_message_ids", ASCENDING)])

    async def save_new_request(
        self, request_id: str, record: dict[str, Any], *, session: AsyncClientSession
    ) -> None:
        document = {**record, "_id": request_id}
        await batch_documents(session).stage(
            self._requests, InsertOne(document), one=request_id, becomes=document
        )

    async def open_batch(self, messages: Sequence[object], tx: LedgerTransaction) -> None:
        """Capturing reads nothing by ``_id``: a batch's new requests are inserted at its commit, in
        one statement (:class:`shared.mongo.BatchDocuments`)."""
        del messages  # nothing to read ahead
        open_batch_documents(tx.session, tx.before_commit)

    async def has_request(self, request_id: str, *, email_message_id: str | None = None) -> bool:
        """Whether request ``request_id`` exists, or (for an email) one that holds this email."""
        query: dict[str, Any] = {"_id": request_id}
        if email_message_id is not None:
            query = {"$or": [query, {"email_message_ids": email_message_id}]}
        return await self._requests.find_one(query, {"_id": 1}) is not None

    async def request_for_email_thread(
        self, message_ids: tuple[str, ...], *, session: AsyncClientSession
    ) -> tuple[str, str] | None:
        """The request (its id and source id) an email thread already belongs to, if any."""
        if not message_ids:
            return None
        await batch_documents(session).flush(self._requests)  # requests this batch captured count too
        found = await self._requests.find_one(
            {"email_message_ids": {"$in": list(message_ids)}}, {"_id": 1, "source_id": 1}, session=session
        )
        return None if found is None else (str(found["_id"]), str(found["source_id"]))

    async def add_reply(
        self,
        request_id: str,
        message_id: str,
        reply: dict[str, Any],
        at: datetime,
        *,
        session: AsyncClientSession,
    ) -> None:
        """Keep a reply's text and attachments on the request it answers."""
        await batch_documents(session).stage(
            self._requests,
            UpdateOne(
                {"_id": request_id},
                {
                    "$push": {"replies": {**reply, "added_at": at}},
                    "$addToSet": {"email_message_ids": message_id},
                },
            ),
            one=request_id,
        )
