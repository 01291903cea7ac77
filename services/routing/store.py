"""Routing's own view: where each request went and when it is due."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import Document


class RoutingStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._routes = database.routes

    async def ensure_indexes(self) -> None:
        await self._routes.create_index([("queue", 1), ("sla_due_at", 1)])

    async def record_route(
        self, request_id: str, route: dict[str, Any], *, session: AsyncClientSession
    ) -> None:
        await self._routes.replace_one(
            {"_id": request_id}, {**route, "_id": request_id}, upsert=True, session=session
        )
