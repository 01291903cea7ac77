"""Composition root of the validation service: wiring only, plus the handlers that call the domain."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import structlog
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaMessage

from services.validation import domain, duplicates
from services.validation.settings import ValidationSettings
from services.validation.store import ValidationStore
from shared.contract import (
    Customer,
    RequestStatus,
    RequestStatusChanged,
)
from shared.delivery import LedgerTransaction, MessageOrigin, ReliableConsumer
from shared.events import CustomerSnapshot, RequestCaptured, RequestSetAside, RequestValidated
from shared.identity import event_id_for
from shared.logging import bound_request
from shared.messages import outgoing_event, outgoing_status, status_changed
from shared.mongo import Document
from shared.reference_views import subscribe_reference_views
from shared.runtime import build_runtime, inbound_batch
from shared.settings import InfrastructureSettings
from shared.status_order import position_of, rank_of
from shared.topics import (
    REQUEST_CAPTURED,
    REQUEST_SET_ASIDE,
    REQUEST_STATUS,
    REQUEST_VALIDATED,
)

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]

# A request stops being open for duplicate matching once one of these is published for it.
TERMINAL_STATUSES = frozenset({RequestStatus.CLOSED, RequestStatus.REJECTED})
# An open request was opened by validation's own ``validated`` status, at its ``opened_at``.
OPENING_RANK = rank_of(RequestStatus.VALIDATED)


class ValidationHandlers:
    """What validation does with captured requests, held requests and status changes."""

    def __init__(
        self,
        store: ValidationStore,
        settings: ValidationSettings,
        consumer: ReliableConsumer,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._consumer = consumer
        self._clock = clock
        self._hold_limit = timedelta(seconds=settings.hold_reference_seconds)
        self._duplicates = domain.DuplicateRule(
            window=timedelta(hours=settings.duplicate_window_hours), criteria=settings.duplicate_match
        )

    async def validate(self, event: RequestCaptured, tx: LedgerTransaction, _: MessageOrigin) -> None:
        details = event.details
        now = self._clock()
        candidates = await self._store.customers_for(
            customer_id=details.customer_id, sender_email=details.sender_email, session=tx.session
        )
        references = await self._references_of(event, tx)
        verdict = domain.decide(details, candidates, references, today=now.date())
        await self._conclude(event, verdict, tx, now=now, hold=None)

    async def recheck_holds(self) -> None:
        """Decide again every held request whose wait may be over, each in its own transaction.

        Runs every few seconds. Reading what changed first keeps an idle run to a few queries;
        one transaction per request keeps one broken hold from blocking the others. Two replicas
        deciding the same hold conflict in their transactions and one gives way; the events
        they would publish have the same ids, so consumers drop a repeat.
        """
        now = self._clock()
        holds = await self._store.all_holds(session=None)
        if not holds:
            return
        waited = _awaited_keys(holds)
        customers = await self._store.customers_by_id({hold["customer_id"] for hold in holds}, session=None)
        known = await self._store.references(
            invoice_ids=waited["invoice"],
            payment_ids=waited["payment"],
            contract_ids=waited["contract"],
            invoice_numbers=waited["invoice_number"],
            payment_numbers=waited["payment_number"],
            session=None,
        )
        for hold in holds:
            waiting_for = tuple(hold["waiting_for"])
            expired = domain.hold_expired(waiting_for, hold["reject_after"], now=now)
            may_be_over = domain.wait_may_be_over(
                waiting_for, customers, known, customer_id=hold["customer_id"]
            )
            if not expired and not may_be_over:
                continue
            request_id = str(hold["_id"])
            with bound_request(request_id=request_id, correlation_id=None):
                try:
                    await self._consumer.run_in_transaction(
                        partial(self._decide_held, request_id),
                        source_key=f"hold:{request_id}:{now.isoformat()}",
                    )
                except Exception as error:  # noqa: BLE001 - the next run tries again
                    log.warning("hold.recheck_failed", error=str(error))

    async def _decide_held(self, request_id: str, tx: LedgerTransaction) -> None:
        hold = await self._store.held(request_id, session=tx.session)
        if hold is None:  # released meanwhile, by another replica
            return
        now = self._clock()
        event = RequestCaptured.model_validate(hold["event"])
        customers = await self._store.customers_by_id([hold["customer_id"]], session=tx.session)
        customer = customers.get(hold["customer_id"])
        if customer is None:
            return
        references = await self._references_of(event, tx)
        verdict = domain.validate_request(
            event.details, customer, references, today=now.date(), hold_expired=now >= hold["reject_after"]
        )
        log.info("hold.decided_again", outcome=verdict.outcome.value, reason=verdict.reason)
        await self._conclude(event, verdict, tx, now=now, hold=hold)

    async def close_finished(
        self, change: RequestStatusChanged, tx: LedgerTransaction, _: MessageOrigin
    ) -> None:
        """A request closed or rejected downstream is no longer open: its duplicate claims go.

        Only a closing newer than the request's opening counts (statuses are applied in the order
        they happened: a ``rejected`` of an earlier life of the request, arriving late, closes
        nothing); and nothing here reopens a closed request.
        """
        if change.status in TERMINAL_STATUSES:
            await self._store.close_request(
                change.request_id,
                closing=position_of(change.status, change.at),
                opening_rank=OPENING_RANK,
                session=tx.session,
            )

    async def _references_of(self, event: RequestCaptured, tx: LedgerTransaction) -> domain.References:
        details = event.details
        return await self._store.references(
            invoice_ids=details.invoice_ids,
            payment_ids=details.payment_ids,
            contract_ids=[details.contract_id] if details.contract_id else [],
            invoice_numbers=[*details.invoice_candidates, *details.loose_candidates],
            payment_numbers=details.payment_candidates,
            session=tx.session,
        )

    async def _conclude(
        self,
        event: RequestCaptured,
        verdict: domain.Verdict,
        tx: LedgerTransaction,
        *,
        now: datetime,
        hold: Document | None,
    ) -> None:
        """Record the verdict and tell routing, the audit and the customer what it is."""
        customer_id = verdict.customer.customer_id if verdict.customer else event.details.customer_id
        if verdict.outcome is RequestStatus.ON_HOLD:
            unchanged = hold is not None and (hold["reason"], tuple(hold["waiting_for"])) == (
                verdict.reason,
                verdict.waiting_for,
            )
            if unchanged:
                return  # still waiting for the same things: nothing new to say
            reject_after = hold["reject_after"] if hold is not None else now + self._hold_limit
            await self._store.hold(
                event,
                customer_id=customer_id or "",
                reason=verdict.reason or domain.AWAITING_REFERENCE_DATA,
                waiting_for=verdict.waiting_for,
                held_at=now,
                reject_after=reject_after,
                session=tx.session,
            )
            self._set_aside(event, verdict, tx, now=now, customer_id=customer_id, reject_after=reject_after)
        elif hold is not None:
            await self._store.release(event.request_id, session=tx.session)

        outcome = verdict.outcome
        if verdict.outcome is RequestStatus.VALIDATED and verdict.customer is not None:
            outcome = await self._pass_on(event, verdict, verdict.customer, tx, now=now)
        elif verdict.outcome is RequestStatus.REJECTED:
            self._set_aside(event, verdict, tx, now=now, customer_id=customer_id)
        await self._store.record_outcome(
            event.request_id,
            {
                "outcome": outcome.value,
                "reason": verdict.reason,
                "customer_id": customer_id,
                "waiting_for": list(verdict.waiting_for),
                "checks": [check.model_dump() for check in verdict.checks],
                "decided_at": now,
            },
            session=tx.session,
        )

    async def _pass_on(
        self,
        event: RequestCaptured,
        verdict: domain.Verdict,
        customer: Customer,
        tx: LedgerTransaction,
        *,
        now: datetime,
    ) -> RequestStatus:
        """A valid request goes to routing, unless it repeats one that is still open.

        What goes on is the request as validation understood it: the documents it names by their
        ERP ids (whatever format the customer wrote them in), amounts from the text in their currency.
        It claims what a repeat would share with it (:mod:`services.validation.duplicates`); a
        claim another open request holds makes it that request's duplicate. Reading the claims and
        writing them in one transaction is atomic: two copies validated at once cannot both pass.
        """
        details = verdict.details or event.details
        claims = duplicates.claim_keys_of(customer.customer_id, details, self._duplicates.criteria)
        held = await self._store.claims_held(claims, session=tx.session)
        earlier = duplicates.earliest_holder(held, event.request_id, since=now - self._duplicates.window)
        if earlier is not None:
            await self._store.link_duplicate(earlier.request_id, event.request_id, session=tx.session)
            duplicate = domain.Verdict(
                RequestStatus.DUPLICATE_OF,
                verdict.checks,
                customer,
                reason="duplicate",
                message=domain.duplicate_message(
                    domain.OpenRequest(
                        request_id=earlier.request_id,
                        customer_id=customer.customer_id,
                        request_type=details.request_type,
                        invoice_ids=(),
                        payment_ids=(),
                        opened_at=earlier.opened_at,
                    )
                ),
                details=details,
            )
            self._set_aside(
                event,
                duplicate,
                tx,
                now=now,
                customer_id=customer.customer_id,
                duplicate_of=earlier.request_id,
            )
            return RequestStatus.DUPLICATE_OF
        await self._store.open_request(
            domain.OpenRequest(
                request_id=event.request_id,
                customer_id=customer.customer_id,
                request_type=details.request_type,
                invoice_ids=details.invoice_ids,
                payment_ids=details.payment_ids,
                opened_at=now,
            ),
            claims=claims,
            criteria=self._duplicates.criteria,
            session=tx.session,
        )
        tx.emit(
            outgoing_event(
                REQUEST_VALIDATED,
                RequestValidated(
                    event_id=event_id_for(event.request_id, "RequestValidated"),
                    request_id=event.request_id,
                    correlation_id=event.correlation_id,
                    occurred_at=now,
                    details=details,
                    customer_id=customer.customer_id,
                    customer_tier=customer.tier,
                    customer=CustomerSnapshot.of(customer),
                    invoices=verdict.invoices,
                    checks=verdict.checks,
                ),
            )
        )
        self._emit_status(event, verdict, tx, now=now, customer_id=customer.customer_id)
        return RequestStatus.VALIDATED

    def _set_aside(
        self,
        event: RequestCaptured,
        verdict: domain.Verdict,
        tx: LedgerTransaction,
        *,
        now: datetime,
        customer_id: str | None,
        reject_after: datetime | None = None,
        duplicate_of: str | None = None,
    ) -> None:
        """A held, rejected or duplicate request: its checks for the audit, its status for the customer."""
        occurrence = ",".join(verdict.waiting_for)
        reason = verdict.reason or ""
        tx.emit(
            outgoing_event(
                REQUEST_SET_ASIDE,
                RequestSetAside(
                    event_id=event_id_for(
                        event.request_id, "RequestSetAside", verdict.outcome.value, reason, occurrence
                    ),
                    request_id=event.request_id,
                    correlation_id=event.correlation_id,
                    occurred_at=now,
                    details=verdict.details or event.details,
                    customer_id=customer_id,
                    customer=CustomerSnapshot.of(verdict.customer) if verdict.customer else None,
                    verdict=verdict.outcome,
                    reason=reason,
                    message=verdict.message,
                    checks=verdict.checks,
                    waiting_for=verdict.waiting_for,
                    reject_after=reject_after,
                    duplicate_of=duplicate_of,
                ),
            )
        )
        self._emit_status(event, verdict, tx, now=now, customer_id=customer_id, duplicate_of=duplicate_of)

    def _emit_status(
        self,
        event: RequestCaptured,
        verdict: domain.Verdict,
        tx: LedgerTransaction,
        *,
        now: datetime,
        customer_id: str | None,
        duplicate_of: str | None = None,
    ) -> None:
        details = event.details
        tx.emit(
            outgoing_status(
                status_changed(
                    request_id=event.request_id,
                    channel=details.channel,
                    source_id=details.source_id,
                    customer_id=customer_id,
                    status=verdict.outcome,
                    reason=verdict.reason,
                    message=verdict.message,
                    duplicate_of=duplicate_of,
                    occurrence=",".join(verdict.waiting_for),
                    at=now,
                )
            )
        )


def _awaited_keys(holds: list[Document]) -> dict[str, set[str]]:
    waited: dict[str, set[str]] = {
        kind: set() for kind in ("invoice", "payment", "contract", "kyc", "invoice_number", "payment_number")
    }
    for hold in holds:
        for item in hold["waiting_for"]:
            kind, key = domain.split_awaited(item)
            waited.setdefault(kind, set()).add(key)
    return waited


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
    handlers = ValidationHandlers(store, settings, runtime.consumer, clock or (lambda: datetime.now(UTC)))
    runtime.startup_hooks.append(store.ensure_indexes)
    runtime.startup_hooks.append(partial(store.claim_for_open_requests, settings.duplicate_match))
    runtime.every(settings.hold_recheck_seconds, handlers.recheck_holds, name="recheck_holds")

    runtime.subscribe_events(REQUEST_CAPTURED, RequestCaptured, handlers.validate)

    @runtime.subscriber(REQUEST_STATUS)
    async def on_status(message: KafkaMessage) -> None:
        await runtime.consumer.consume_batch(
            inbound_batch(message),
            model=RequestStatusChanged,
            idempotency_key=lambda change, _: f"status:{change.event_id}",
            apply=handlers.close_finished,
        )

    subscribe_reference_views(runtime, store, customer_document=customer_document)

    return runtime.asgi_app(), settings
