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
from services.validation.lifecycle import (
    AnswerWait,
    Facts,
    Hold,
    Lookup,
    RequestValidation,
    Rules,
    ValidationState,
    finishing,
)
from services.validation.settings import ValidationSettings
from services.validation.store import ValidationStore
from shared.actions import CustomerQuestionRequested, WorkspaceActionMessage
from shared.business_time import load_calendar
from shared.contract import Customer, RequestStatusChanged
from shared.delivery import LedgerTransaction, MessageOrigin, idempotent_by_itself
from shared.events import EmailReplyAdded, RequestCaptured, RequestUpdateMessage
from shared.lifecycle import TransitionRefused
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
    """The hold limit, the duplicate rule and how long a question waits, as the settings give them.

    Business days are counted in routing's business calendar (its rules file): only when a
    question waits in business days is the file read.
    """
    seconds = settings.customer_answer_seconds
    return Rules(
        hold_limit=timedelta(seconds=settings.hold_reference_seconds),
        duplicates=domain.DuplicateRule(
            window=timedelta(hours=settings.duplicate_window_hours), criteria=settings.duplicate_match
        ),
        answer_wait=AnswerWait(
            business_days=settings.customer_answer_business_days,
            calendar=None if seconds is not None else load_calendar(settings.routing_rules_file),
            seconds=seconds,
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
        if request is not None and request.withdrawn:
            log.info("capture.of_a_withdrawn_request_ignored")  # the withdrawal overtook it
            return
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
        wait = self._rules.answer_wait
        return [
            hold.request_id
            for hold in holds
            if hold.due(customers, known, now=now) or hold.chase_due(wait, now=now)
        ]

    async def recheck(self, request_id: str, tx: LedgerTransaction) -> None:
        """Decide a held request again (the timer's work, in a transaction of its own); a question
        for the customer is chased: reminded once halfway, closed (``no_response``) at its deadline.

        Two replicas deciding the same hold conflict in their transactions and one gives way; the
        events they would publish have the same ids, so consumers drop a repeat.
        """
        request = await self._store.load(request_id, session=tx.session)
        if request is None or not request.held:  # released meanwhile, by another replica
            return
        chased = request.chase(now=self._clock(), rules=self._rules)
        emit(tx, chased)
        if request.held and not request.waits_only_for_the_customer:
            await self._decide(request, tx)
        else:
            await self._store.save(request, session=tx.session)

    async def take_update(
        self, message: RequestUpdateMessage, tx: LedgerTransaction, _: MessageOrigin
    ) -> None:
        """A reply in the request's thread (an answer, or a reopening), or its CRM case changed."""
        update = message.root
        request = await self._store.load(update.request_id, session=tx.session)
        if request is None:
            # Not decided yet (its capture is still on the way, on another topic): a changed case
            # is decided as it stands now, a withdrawn one closed at once (its capture, when it
            # comes, finds it closed); a reply answers nothing yet (nothing was asked).
            if isinstance(update, EmailReplyAdded):
                log.info("update.before_capture", kind=update.event_type)
                return
            request = RequestValidation(update.request_id)
            request.capture(
                RequestCaptured(
                    event_id=update.event_id,
                    request_id=update.request_id,
                    correlation_id=update.correlation_id,
                    occurred_at=update.occurred_at,
                    details=update.details,
                )
            )
            if update.withdrawn:
                emit(tx, request.withdraw(now=self._clock()))
                await self._store.save(request, session=tx.session)
            else:
                await self._decide(request, tx)
            return
        now = self._clock()
        if isinstance(update, EmailReplyAdded):
            effects = request.answer(update, now=now)
        else:
            effects = request.update(update, now=now)
        emit(tx, effects)
        if request.state is ValidationState.NEW:
            await self._decide(request, tx)
        else:
            await self._store.save(request, session=tx.session)

    async def ask_customer(
        self, message: WorkspaceActionMessage, tx: LedgerTransaction, _: MessageOrigin
    ) -> None:
        """A person's question for the customer; the other actions are other services' to carry out."""
        action = message.root
        if not isinstance(action, CustomerQuestionRequested):
            return
        request = await self._store.load(action.request_id, session=tx.session)
        if request is None:
            raise TransitionRefused("unknown_request", f"validation knows no request {action.request_id}")
        emit(
            tx, request.ask(action.question, action_id=action.event_id, now=self._clock(), rules=self._rules)
        )
        await self._store.save(request, session=tx.session)

    async def _decide(self, request: RequestValidation, tx: LedgerTransaction) -> None:
        now = self._clock()
        verdict = request.check(await self._store.facts(request.lookup(), session=tx.session), now=now)
        if verdict is None:
            return  # held for a customer the master data no longer has: decided again when it does
        claimed = await self._store.claims_held(request.claims_for(verdict, self._rules), session=tx.session)
        emit(tx, request.conclude(verdict, claimed, now=now, rules=self._rules))
        await self._store.save(request, session=tx.session)

    # Idempotent by the request itself: a closing ends an open request once, a repeat finds it
    # closed, and one older than the opening is ignored (RequestValidation.finish). No processed key.
    @idempotent_by_itself
    async def follow_status(
        self, change: RequestStatusChanged, tx: LedgerTransaction, _: MessageOrigin
    ) -> None:
        """A request closed or rejected downstream is no longer open: its duplicate claims go."""
        if not finishing(change.status):
            return
        request = await self._store.load(change.request_id, session=tx.session)
        if request is not None:
            emit(tx, request.finish(change.status, change.at))
            if request.state is ValidationState.NEW:  # reopened by a reply read before the closing
                await self._decide(request, tx)
            else:
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
    runtime.subscribe_updates(handlers.take_update)
    runtime.subscribe_actions(handlers.ask_customer)
    runtime.subscribe(
        REQUEST_STATUS,
        RequestStatusChanged,
        handlers.follow_status,
        key=lambda change, _: f"status:{change.event_id}",
        prefetch=store.prefetch_status,
    )
    subscribe_reference_views(runtime, store, customer_document=customer_document)

    return runtime.asgi_app(), settings
