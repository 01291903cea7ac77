"""Resolution's own view: routed requests and the resolutions issued for them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.contract import ErpAck
from shared.mongo import Document


class ResolutionStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._requests = database.requests
        self._resolutions = database.resolutions

    async def ensure_indexes(self) -> None:
        await self._resolutions.create_index("request_id")

    async def record_request(
        self, request_id: str, record: dict[str, Any], *, session: AsyncClientSession
    ) -> None:
        await self._requests.replace_one(
            {"_id": request_id}, {**record, "_id": request_id}, upsert=True, session=session
        )

    async def request(self, request_id: str, *, session: AsyncClientSession) -> Document | None:
        return await self._requests.find_one({"_id": request_id}, session=session)

    async def record_resolution(
        self, resolution_id: str, record: dict[str, Any], *, session: AsyncClientSession
    ) -> None:
        await self._resolutions.replace_one(
            {"_id": resolution_id}, {**record, "_id": resolution_id}, upsert=True, session=session
        )

    async def resolution(self, resolution_id: str, *, session: AsyncClientSession) -> Document | None:
        return await self._resolutions.find_one({"_id": resolution_id}, session=session)

    async def record_ack(
        self,
        ack: ErpAck,
        *,
        request_state: str,
        at: datetime,
        session: AsyncClientSession,
    ) -> None:
        """Keep the ERP's answer on the resolution, and the request's new state."""
        await self._resolutions.update_one(
            {"_id": ack.resolution_id},
            {
                "$set": {
                    "status": ack.status,
                    "erp_document_id": ack.erp_document_id,
                    "erp_error": ack.error,
                    "acknowledged_at": at,
                }
            },
            session=session,
        )
        await self._requests.update_one(
            {"_id": ack.request_id}, {"$set": {"state": request_state}}, session=session
        )
