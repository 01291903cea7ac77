"""Intake's own view: one document per request, with the emails that belong to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, InsertOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.contract import CrmRequest
from shared.delivery import LedgerTransaction
from shared.identity import crm_request_id
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
        """Open the batch's unit of work: its new requests are inserted at its commit, in one
        statement (:class:`shared.mongo.BatchDocuments`); the requests of its CRM cases (each case
        asks for its request's last version, :meth:`case_version`) are read now, in one ``$in``."""
        batch = open_batch_documents(tx.session, tx.before_commit)
        cases = [crm_request_id(message.case_id) for message in messages if isinstance(message, CrmRequest)]
        if cases:
            await batch.fetch(self._requests, cases)

    async def has_request(self, request_id: str, *, email_message_id: str | None = None) -> bool:
        """Whether request ``request_id`` exists, or (for an email) one that holds this email."""
        # Two indexed reads, not one $or (which the local database server answers by a scan).
        if await self._requests.find_one({"_id": request_id}, {"_id": 1}) is not None:
            return True
        if email_message_id is None:
            return False
        return await self._requests.find_one({"email_message_ids": email_message_id}, {"_id": 1}) is not None

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

    async def case_version(self, request_id: str, *, session: AsyncClientSession) -> CaseVersion | None:
        """The version of a CRM case last taken in (None: no request for it yet)."""
        # Through the batch: a case and its update in one batch see each other (its insert is staged).
        found = await batch_documents(session).fetch_one(self._requests, request_id)
        if found is None:
            return None
        updated_at = found.get("case_updated_at")
        return CaseVersion(
            fingerprint=found.get("case_fingerprint"),
            content=found.get("case_content"),
            updated_at=updated_at.replace(tzinfo=UTC) if isinstance(updated_at, datetime) else None,
        )

    async def record_case_version(
        self,
        request_id: str,
        *,
        fingerprint: str,
        content: dict[str, Any],
        updated_at: datetime | None,
        details: dict[str, Any] | None,
        session: AsyncClientSession,
    ) -> None:
        """Keep the version of a case just taken in (and, for an update, what it now says)."""
        fields: dict[str, Any] = {
            "case_fingerprint": fingerprint,
            "case_content": content,
            "case_updated_at": updated_at,
        }
        if details is not None:
            fields.update(details)
        await batch_documents(session).stage(
            self._requests, UpdateOne({"_id": request_id}, {"$set": fields}), one=request_id
        )

    async def latest_request_for_email_thread(
        self, message_ids: tuple[str, ...], *, session: AsyncClientSession
    ) -> ThreadRequest | None:
        """The newest request an email thread belongs to (a late reply may have opened a second)."""
        if not message_ids:
            return None
        await batch_documents(session).flush(self._requests)  # requests this batch captured count too
        cursor = (
            self._requests.find(
                {"email_message_ids": {"$in": list(message_ids)}},
                {"_id": 1, "source_id": 1, "closed_at": 1, "reopened_at": 1, "captured_at": 1},
                session=session,
            )
            .sort("captured_at", DESCENDING)
            .limit(1)
        )
        async for found in cursor:
            closed_at, reopened_at = _aware(found.get("closed_at")), _aware(found.get("reopened_at"))
            still_closed = closed_at is not None and (reopened_at is None or closed_at > reopened_at)
            return ThreadRequest(
                request_id=str(found["_id"]),
                source_id=str(found["source_id"]),
                closed_at=closed_at if still_closed else None,
            )
        return None

    # The latest closing and the latest reopening are kept apart, each by ``$max``: applying a
    # status again, or an older one delivered late, changes nothing, in whatever order they come
    # (so the status follower needs no processed keys). The request is closed when its latest
    # closing is later than its latest reopening.

    async def mark_closed(self, request_id: str, at: datetime, *, session: AsyncClientSession) -> None:
        """The request was closed at ``at`` (a reply after the reopening window opens a new one)."""
        await batch_documents(session).stage(
            self._requests, UpdateOne({"_id": request_id}, {"$max": {"closed_at": at}}), one=request_id
        )

    async def mark_reopened(self, request_id: str, at: datetime, *, session: AsyncClientSession) -> None:
        """The request was reopened at ``at``: a closing before that does not count any more."""
        await batch_documents(session).stage(
            self._requests, UpdateOne({"_id": request_id}, {"$max": {"reopened_at": at}}), one=request_id
        )


def _aware(value: object) -> datetime | None:
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) else None


@dataclass(frozen=True)
class CaseVersion:
    """The version of a CRM case intake took in last."""

    fingerprint: str | None
    """None: captured before fingerprints were kept (the next version seen becomes the baseline)."""
    content: dict[str, Any] | None
    updated_at: datetime | None


@dataclass(frozen=True)
class ThreadRequest:
    """The request an email thread belongs to, and when it was closed (None: it is not)."""

    request_id: str
    source_id: str
    closed_at: datetime | None
