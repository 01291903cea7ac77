"""Composition root of the validation service: wiring, plus the handlers that call the lifecycle.

Each handler translates a message into one transition of the request's lifecycle
(:mod:`services.validation.lifecycle`): load the request, look up what it needs, call the
transition, save it, emit what it caused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol

import structlog
from faststream.asgi import AsgiFastStream
from pymongo.asynchronous.client_session import AsyncClientSession

from services.validation import domain
from services.validation.duplicates import Claim
from services.validation.lifecycle import Facts, Hold, Lookup, RequestValidation, Rules, finishing
from services.validation.settings import ValidationSettings
from services.validation.store import ValidationStore
from shared.contract import Customer, RequestStatusChanged
from shared.delivery import LedgerTransaction, MessageOrigin
from shared.events import RequestCaptured
from shared.messages import emit
from shared.reference_views import subscribe_reference_views
from shared.runtime import build_runtime
from shared.settings import InfrastructureSettings
from shared.topics import REQUEST_CAPTURED, REQUEST_STATUS

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


class Requests(Protocol):
    """What the handlers need of the store (:class:`ValidationStore`; a fake in unit tests)."""

    async def load(
        self, request_id: str, *, session: AsyncClientSession | None
    ) -> RequestValidation | None: ...

    async def save(self, request: RequestValidation, *, session: AsyncClientSession) -> None: ...

    async def facts(self, lookup: Lookup, *, session: AsyncClientSession | None) -> Facts: ...

    async def claims_held(self, keys: Sequence[str], *, session: AsyncClientSession) -> list[Claim]: ...

    async def all_holds(self) -> list[Hold]: ...

    async def awaited_by(self, holds: Sequence[Hold]) -> tuple[dict[str, Customer], domain.References]: ...


def rules_of(settings: ValidationSettings) -> Rules:
    """The hold limit and the duplicate rule the settings give."""
    return Rules(
        hold_limit=timedelta(seconds=settings.hold_reference_seconds),
        duplicates=domain.DuplicateRule(
            window=timedelta(hours=settings.duplicate_window_hours), criteria=settings.duplicate_match
        ),
    )


class ValidationHandlers:
    """What validation does with captured requests, held requests and status changes."""

    def __init__(self, store: Requests, rules: Rules, clock: Clock = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._rules = rules
        self._clock = clock

    async def validate(self, event: RequestCaptured, tx: LedgerTransaction, _: MessageOrigin) -> None:
        request = await self._store.load(event.request_id, session=tx.session)
        request = request or RequestValidation(event.request_id)
        request.capture(event)
        await self._decide(request, tx)

    async def holds_to_recheck(self) -> list[str]:
        """The held requests whose wait may be over, or whose time is up (a hint: each is read again).

        Runs every few seconds: reading what the holds wait for first keeps an idle run to a few
        queries.
        """
        now = self._clock()
        holds = await self._store.all_holds()
        if not holds:
            return []
        customers, known = await self._store.awaited_by(holds)
        return [hold.request_id for hold in holds if hold.due(customers, known, now=now)]

    async def recheck(self, request_id: str, tx: LedgerTransaction) -> None:
        """Decide a held request again (the timer's work, in a transaction of its own).

        Two replicas deciding the same hold conflict in their transactions and one gives way; the
        events they would publish have the same ids, so consumers drop a repeat.
        """
        request = await self._store.load(request_id, session=tx.session)
        if request is not None and request.held:  # else released meanwhile, by another replica
            await self._decide(request, tx)

    async def _decide(self, request: RequestValidation, tx: LedgerTransaction) -> None:
        now = self._clock()
        verdict = request.check(await self._store.facts(request.lookup(), session=tx.session), now=now)
        if verdict is None:
            return  # held for a customer the master data no longer has: decided again when it does
        claimed = await self._store.claims_held(request.claims_for(verdict, self._rules), session=tx.session)
        emit(tx, request.conclude(verdict, claimed, now=now, rules=self._rules))
        await self._store.save(request, session=tx.session)

    async def follow_status(
        self, change: RequestStatusChanged, tx: LedgerTransaction, _: MessageOrigin
    ) -> None:
        """A request closed or rejected downstream is no longer open: its duplicate claims go."""
        if not finishing(change.status):
            return
        request = await self._store.load(change.request_id, session=tx.session)
        if request is not None:
            emit(tx, request.finish(change.status, change.at))
            await self._store.save(request, session=tx.session)


def customer_document(customer: Customer) -> dict[str, Any]:
    """The stored customer, with its contacts' addresses lower-cased for sender lookup."""
    document = customer.model_dump(mode="json")
    document["contact_emails"] = sorted(
        {contact.email.strip().lower() for contact in customer.contacts if contact.email}
    )
    return document


def build_app(
    settings: ValidationSettings | None = None,
    infrastructure: InfrastructureSettings | None = None,
    clock: Clock | None = None,
) -> tuple[AsgiFastStream, ValidationSettings]:
    """Build the validation service. ``clock`` lets tests move time past a hold's limit."""
    settings = settings or ValidationSettings()
    runtime = build_runtime(settings, infrastructure)
    store = ValidationStore(runtime.database)
    handlers = ValidationHandlers(store, rules_of(settings), clock or (lambda: datetime.now(UTC)))
    runtime.startup_hooks.append(store.ensure_indexes)
    runtime.startup_hooks.append(partial(store.claim_for_open_requests, settings.duplicate_match))

    runtime.every_each(
        settings.hold_recheck_seconds, handlers.holds_to_recheck, handlers.recheck, name="recheck_holds"
    )

    runtime.subscribe_events(
        REQUEST_CAPTURED, RequestCaptured, handlers.validate, prefetch=store.prefetch_captured
    )
    runtime.subscribe(
        REQUEST_STATUS,
        RequestStatusChanged,
        handlers.follow_status,
        key=lambda change, _: f"status:{change.event_id}",
        prefetch=store.prefetch_status,
    )
    subscribe_reference_views(runtime, store, customer_document=customer_document)

    return runtime.asgi_app(), settings
