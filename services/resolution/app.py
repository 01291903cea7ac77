"""Composition root of the resolution service: wiring, plus the handlers that call the lifecycle.

Each handler translates a message into one transition of the request's lifecycle
(:mod:`services.resolution.lifecycle`): load the request, call the transition with what it needs,
save it, emit what it caused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog
from faststream.asgi import AsgiFastStream
from pymongo.asynchronous.client_session import AsyncClientSession

from services.resolution.lifecycle import Approvers, RequestResolution, Terms
from services.resolution.policy import load_policy
from services.resolution.settings import ResolutionSettings
from services.resolution.store import ResolutionStore
from services.resolution.strategies import Facts
from shared.actions import ClosureRequested, PostingRetryRequested, ResolutionDecided, WorkspaceActionMessage
from shared.contract import ApprovalDecision, ErpAck
from shared.delivery import LedgerTransaction, MessageOrigin
from shared.directory import UserDirectory, build_user_directory
from shared.events import CaseUpdated, RequestRouted, RequestUpdateMessage
from shared.lifecycle import TransitionRefused
from shared.messages import emit
from shared.reference_views import subscribe_reference_views
from shared.runtime import build_runtime
from shared.settings import InfrastructureSettings
from shared.topics import APPROVALS, ERP_ACKS, REQUEST_ROUTED

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


class Requests(Protocol):
    """What the handlers need of the store (:class:`ResolutionStore`; a fake in unit tests)."""

    async def load(
        self, request_id: str, *, session: AsyncClientSession | None
    ) -> RequestResolution | None: ...

    async def save(self, request: RequestResolution, *, session: AsyncClientSession) -> None: ...

    async def facts(self, event: RequestRouted, *, session: AsyncClientSession) -> Facts: ...

    async def waiting_for_reference_data(self) -> list[str]: ...

    async def with_overdue_postings(self, now: datetime) -> list[str]: ...

    async def documents(
        self,
        *,
        customer_id: str,
        invoice_ids: Iterable[str],
        payment_ids: Iterable[str],
        session: AsyncClientSession,
    ) -> Facts: ...


class ResolutionHandlers:
    """Routed requests, approval decisions, ERP acks, people's actions, and the two timers."""

    def __init__(self, store: Requests, terms: Terms, *, clock: Clock, directory: UserDirectory) -> None:
        self._store = store
        self._terms = terms
        self._clock = clock
        self._directory = directory

    async def resolve(self, event: RequestRouted, tx: LedgerTransaction, _: MessageOrigin) -> None:
        known = await self._store.load(event.request_id, session=tx.session)
        if known is not None and known.awaits_its_routing_to_close:
            emit(tx, known.routed_after_withdrawal(event, now=self._clock(), terms=self._terms))
            await self._store.save(known, session=tx.session)
            return
        if known is not None:
            # Routed again (re-routed by a person, or a replay with another event id): it was
            # decided once, and a second, different posting must never come of it; its new queue
            # is kept for the statuses to come.
            log.info("resolution.already_decided")
            about = known.about
            emit(tx, known.follow_route(event))
            if known.about != about:
                await self._store.save(known, session=tx.session)
            return
        now = self._clock()
        await self._consider(RequestResolution.from_routed(event, now=now, terms=self._terms), tx, now)

    async def waiting_for_data(self) -> list[str]:
        """The requests on hold for reference data (a hint: :meth:`resume` reads each again)."""
        return await self._store.waiting_for_reference_data()

    async def resume(self, request_id: str, tx: LedgerTransaction) -> None:
        """Try the strategy again for a request waiting for reference data (the timer's work)."""
        request = await self._store.load(request_id, session=tx.session)
        if request is not None and request.waits_for_reference_data:  # else decided meanwhile
            await self._consider(request, tx, self._clock())

    async def _consider(self, request: RequestResolution, tx: LedgerTransaction, now: datetime) -> None:
        assert request.routed is not None  # a request waiting for data keeps its routed event
        facts = await self._store.facts(request.routed, session=tx.session)
        emit(tx, request.consider(facts, now=now, terms=self._terms))
        await self._store.save(request, session=tx.session)

    async def decide(self, decision: ApprovalDecision, tx: LedgerTransaction, _: MessageOrigin) -> None:
        request = await self._existing(decision.request_id, tx)
        approvers = Approvers(
            approver=await self._directory.find(decision.approver),
            requester_ids=await self._directory_ids(request.about.requesters),
            approved_ids=await self._directory_ids(approval.approver for approval in request.approvals),
        )
        emit(tx, request.decide(decision, approvers, now=self._clock(), terms=self._terms))
        await self._store.save(request, session=tx.session)

    async def acknowledge(self, ack: ErpAck, tx: LedgerTransaction, _: MessageOrigin) -> None:
        request = await self._store.load(ack.request_id, session=tx.session)
        if request is None:
            raise TransitionRefused(
                "unknown_resolution", f"no resolution {ack.resolution_id} for request {ack.request_id}"
            )
        if request.withdrawn:
            emit(tx, request.acknowledge_after_withdrawal(ack, now=self._clock()))
        else:
            emit(tx, request.acknowledge(ack, now=self._clock()))
        await self._store.save(request, session=tx.session)

    async def take_update(
        self, message: RequestUpdateMessage, tx: LedgerTransaction, _: MessageOrigin
    ) -> None:
        """A withdrawn case closes the request resolution holds (other updates are validation's)."""
        update = message.root
        if not isinstance(update, CaseUpdated) or not update.withdrawn:
            return
        request = await self._store.load(update.request_id, session=tx.session)
        if request is None:
            # Not routed here (yet): validation closes it if it never passed it on; if it did, the
            # routing on its way finds this and closes it then.
            request = RequestResolution.withdrawn_before_routing(update, now=self._clock())
            await self._store.save(request, session=tx.session)
            return
        emit(tx, request.withdraw(now=self._clock()))
        await self._store.save(request, session=tx.session)

    async def with_overdue_postings(self) -> list[str]:
        """The requests with a posting the ERP has not acknowledged in time (a hint, read again)."""
        return await self._store.with_overdue_postings(self._clock())

    async def escalate(self, request_id: str, tx: LedgerTransaction) -> None:
        """Escalate, once each, the request's postings the ERP has not acknowledged in time."""
        request = await self._store.load(request_id, session=tx.session)
        if request is not None:
            emit(tx, request.escalate_overdue(now=self._clock(), terms=self._terms))
            await self._store.save(request, session=tx.session)

    async def carry_out(
        self, message: WorkspaceActionMessage, tx: LedgerTransaction, _: MessageOrigin
    ) -> None:
        """A person's action in the workspace that resolution owns (the others are not for it)."""
        action, now = message.root, self._clock()
        if not isinstance(action, ResolutionDecided | PostingRetryRequested | ClosureRequested):
            return
        request = await self._existing(action.request_id, tx)
        if isinstance(action, ResolutionDecided):
            facts = await self._store.documents(
                customer_id=request.about.customer_id or "",
                invoice_ids=[
                    *([action.invoice_id] if action.invoice_id else []),
                    *(request.routed.details.invoice_ids if request.routed else ()),
                ],
                payment_ids=[action.payment_id] if action.payment_id else [],
                session=tx.session,
            )
            effects = request.carry_out_decision(action, facts, now=now, terms=self._terms)
        elif isinstance(action, PostingRetryRequested):
            effects = request.retry_failed_postings(action, now=now, terms=self._terms)
        else:
            effects = request.close_by_person(action, now=now)
        emit(tx, effects)
        await self._store.save(request, session=tx.session)

    async def _existing(self, request_id: str, tx: LedgerTransaction) -> RequestResolution:
        request = await self._store.load(request_id, session=tx.session)
        if request is None:
            raise TransitionRefused("unknown_request", f"resolution knows no request {request_id}")
        return request

    async def _directory_ids(self, names: Iterable[str]) -> frozenset[str]:
        """The directory ids of the people ``names`` name (names of nobody it knows: left out)."""
        found = [await self._directory.find(name) for name in names]
        return frozenset(user.id for user in found if user is not None)


def build_app(
    settings: ResolutionSettings | None = None,
    infrastructure: InfrastructureSettings | None = None,
    clock: Clock | None = None,
    directory: UserDirectory | None = None,
) -> tuple[AsgiFastStream, ResolutionSettings]:
    """Build the resolution service. A bad approval policy file or user directory stops it here,
    with the reason. ``directory`` replaces the configured one (tests)."""
    settings = settings or ResolutionSettings()
    policy = load_policy(settings.approval_policy_path)
    directory = directory or build_user_directory()
    runtime = build_runtime(settings, infrastructure)
    store = ResolutionStore(runtime.database)
    terms = Terms(
        policy=policy,
        ack_timeout=timedelta(seconds=settings.ack_timeout_seconds),
        reference_wait=timedelta(seconds=settings.reference_wait_seconds),
    )
    handlers = ResolutionHandlers(
        store, terms, clock=clock or (lambda: datetime.now(UTC)), directory=directory
    )
    runtime.startup_hooks.append(store.ensure_indexes)

    every = settings.ack_check_seconds
    runtime.every_each(every, handlers.with_overdue_postings, handlers.escalate, name="escalate_overdue_acks")
    runtime.every_each(every, handlers.waiting_for_data, handlers.resume, name="resume_waiting_for_data")

    runtime.subscribe_events(REQUEST_ROUTED, RequestRouted, handlers.resolve, prefetch=store.prefetch_routed)
    runtime.subscribe_updates(handlers.take_update)
    runtime.subscribe(
        APPROVALS,
        ApprovalDecision,
        handlers.decide,
        key=lambda decision, _: (
            f"approval:{decision.request_id}:{decision.approver.strip().lower()}:"
            f"{decision.decision}:{decision.decided_at.isoformat()}"
        ),
        log_ids=lambda decision: (decision.request_id, None),
    )
    runtime.subscribe(
        ERP_ACKS,
        ErpAck,
        handlers.acknowledge,
        key=lambda ack, _: f"ack:{ack.resolution_id}:{ack.status}",
        log_ids=lambda ack: (ack.request_id, ack.resolution_id),
        prefetch=store.prefetch_acks,
    )
    runtime.subscribe_actions(handlers.carry_out)
    subscribe_reference_views(runtime, store)

    return runtime.asgi_app(), settings
