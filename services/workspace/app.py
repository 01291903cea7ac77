"""Composition root of the workspace: the view's consumer, the HTTP app, and how they run together.

One process, one port: FastAPI serves the console and the API, and hands ``/health``,
``/health/live`` and ``/metrics`` to the FastStream app (the same answers as every service). The
FastAPI app's lifespan starts the FastStream app (broker, subscriber, outbox sweeper) and the live
updates, and stops them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, MutableMapping
from datetime import UTC, datetime
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

from fastapi import FastAPI
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaMessage
from pydantic import BaseModel, ConfigDict

from services.workspace import domain, projection, refusals
from services.workspace.auth import Authenticator
from services.workspace.live import LiveUpdates
from services.workspace.service import Workspace
from services.workspace.settings import WorkspaceSettings
from services.workspace.store import WorkspaceStore
from services.workspace.web import build_web
from shared.business_time import load_calendar
from shared.delivery import LedgerTransaction, MessageOrigin, PermanentFailure, idempotent_by_itself
from shared.directory import DirectorySettings, UserDirectory, build_user_directory
from shared.kafka import BrokerPublisher
from shared.runtime import ServiceRuntime, build_runtime, inbound_batch
from shared.settings import InfrastructureSettings
from shared.topics import REQUEST_ACTIONS, dead_letter_topic

Clock = Callable[[], datetime]
Scope = MutableMapping[str, Any]
RUNTIME_PATHS = frozenset({"/health", "/health/live", "/metrics"})


class RawRecord(BaseModel):
    """A record of any topic the view reads, as a JSON object; its topic's model is applied later."""

    model_config = ConfigDict(frozen=True, extra="allow")

    @property
    def payload(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ViewHandlers:
    """Applies the topics to the view: a batch's changes in one read and one write, before its commit."""

    def __init__(self, store: WorkspaceStore) -> None:
        self._store = store
        self._pending: WeakKeyDictionary[LedgerTransaction, list[projection.Change]] = WeakKeyDictionary()

    # Each entry of a request's document is kept under its message's identity (and an email under
    # its Message-ID): applying a message again adds nothing, so no processed-key record is needed.
    @idempotent_by_itself
    async def record(self, record: RawRecord, tx: LedgerTransaction, origin: MessageOrigin) -> None:
        try:
            change = projection.change_of(origin.topic, record.payload)
        except projection.InvalidRecord as error:
            raise PermanentFailure("invalid_message", str(error)) from error
        pending = self._pending.get(tx)
        if pending is None:
            pending = self._pending[tx] = []
            tx.before_commit(partial(self._apply, tx, pending))
        pending.append(change)

    async def _apply(self, tx: LedgerTransaction, changes: list[projection.Change]) -> None:
        ids = {change.request_id for change in changes if change.request_id}
        stored = await self._store.documents(ids, session=tx.session) if ids else {}
        changed: dict[str, domain.Document] = {}
        emails = []
        for change in changes:
            if change.email is not None:
                emails.append(change.email)
                continue
            if change.request_id is None or change.field is None:
                continue
            document = (
                changed.get(change.request_id)
                or stored.get(change.request_id)
                or domain.new_document(change.request_id)
            )
            if change.field == "captured":
                modified = domain.set_captured(document, change.entry)
            else:
                modified = domain.add_entry(document, change.field, change.entry, sort_by=change.sort_by)
            if modified:
                changed[change.request_id] = document
        for document in changed.values():
            document["summary"] = domain.summarise(document)
        await self._store.save(list(changed.values()), session=tx.session)
        await self._store.save_emails(emails, session=tx.session)


def _publisher(runtime: ServiceRuntime) -> Callable[[str, str, bytes], Any]:
    send = BrokerPublisher(runtime.broker)

    async def publish(topic: str, key: str, value: bytes) -> None:
        acknowledgement = await send(
            value, topic=topic, key=key, headers={"content-type": "application/json"}
        )
        await acknowledgement

    return publish


def build_app(
    settings: WorkspaceSettings | None = None,
    infrastructure: InfrastructureSettings | None = None,
    *,
    directory: UserDirectory | None = None,
    clock: Clock | None = None,
) -> tuple[OnePort, WorkspaceSettings]:
    """Build the workspace: an ASGI app for uvicorn, and its settings. ``clock`` lets tests move time."""
    settings = settings or WorkspaceSettings()
    clock = clock or (lambda: datetime.now(UTC))
    calendar = load_calendar(settings.routing_rules_file)
    directory = directory or build_user_directory(DirectorySettings())
    runtime = build_runtime(settings, infrastructure)
    store = WorkspaceStore(runtime.database)
    handlers = ViewHandlers(store)
    runtime.startup_hooks.append(store.ensure_indexes)

    @runtime.subscriber(*projection.VIEW_TOPICS, name="view")
    async def on_record(message: KafkaMessage) -> None:
        await runtime.consumer.consume_batch(
            inbound_batch(message),
            model=RawRecord,
            idempotency_key=lambda record, origin: projection.identity_of(origin.topic, record.payload),
            apply=handlers.record,
            log_ids=lambda record: (_text(record.payload.get("request_id")), None),
        )

    @runtime.subscriber(dead_letter_topic(REQUEST_ACTIONS), name="refusals")
    async def on_refused_actions(message: KafkaMessage) -> None:
        records: Any = message.raw_message  # a batch subscriber: a tuple of records
        found = (refusals.refusal_of(record.value or b"", _text_headers(record)) for record in records)
        await store.save_refusals([refusal for refusal in found if refusal is not None])

    stream_app = runtime.asgi_app()
    live = LiveUpdates(store.changed_requests, store.refused_requests)
    workspace = Workspace(store, directory, _publisher(runtime), clock)
    auth = Authenticator(settings, directory)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with stream_app.start_lifespan_context():
            live.start()
            try:
                yield
            finally:
                await live.stop()

    web = build_web(
        settings=settings,
        workspace=workspace,
        auth=auth,
        live=live,
        calendar=calendar,
        lifespan=lifespan,
        clock=clock,
    )
    return OnePort(web, stream_app), settings


class OnePort:
    """The workspace's ASGI app: ``/health``, ``/health/live`` and ``/metrics`` go to the FastStream
    app, the rest to FastAPI. Like every service's app it exposes its ``broker``."""

    def __init__(self, web: FastAPI, stream_app: AsgiFastStream) -> None:
        self._web = web
        self._stream_app = stream_app

    @property
    def broker(self) -> Any:
        return self._stream_app.broker

    async def __call__(self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http" and scope.get("path") in RUNTIME_PATHS:
            await self._stream_app(scope, receive, send)
        else:
            await self._web(scope, receive, send)


def _text_headers(record: Any) -> dict[str, str]:
    """A record's headers as text (the batch parser has made every value valid UTF-8)."""
    return {name: (value or b"").decode(errors="replace") for name, value in record.headers or ()}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
