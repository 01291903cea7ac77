"""Composition root of the resolution service: wiring, plus the handlers that call the domain."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import structlog
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaMessage

from services.resolution import approvals, domain, strategies
from services.resolution.policy import ApprovalPolicy, load_policy
from services.resolution.settings import ResolutionSettings
from services.resolution.store import ResolutionStore
from shared.contract import (
    ApprovalDecision,
    Channel,
    ErpAck,
    ErpResolution,
    Priority,
    RequestStatus,
    ResolutionApproval,
    ResolutionKind,
)
from shared.delivery import (
    LedgerTransaction,
    MessageOrigin,
    OutgoingMessage,
    PermanentFailure,
    ReliableConsumer,
)
from shared.directory import UserDirectory, build_user_directory
from shared.events import RequestRouted
from shared.logging import bound_request
from shared.messages import outgoing_status, status_changed
from shared.money import Money
from shared.mongo import Document
from shared.reference_views import subscribe_reference_views
from shared.runtime import build_runtime, inbound_batch
from shared.settings import InfrastructureSettings
from shared.topics import (
    APPROVALS,
    ERP_ACKS,
    ERP_RESOLUTIONS,
    REQUEST_ROUTED,
)

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


class ResolutionHandlers:
    """Routed requests, approval decisions, ERP acks and the ack timer."""

    def __init__(
        self,
        store: ResolutionStore,
        policy: ApprovalPolicy,
        consumer: ReliableConsumer,
        *,
        ack_timeout: timedelta,
        reference_wait: timedelta,
        clock: Clock,
        directory: UserDirectory,
    ) -> None:
        self._directory = directory
        self._reference_wait = reference_wait
        self._store = store
        self._policy = policy
        self._consumer = consumer
        self._ack_timeout = ack_timeout
        self._clock = clock

    async def resolve(self, event: RequestRouted, tx: LedgerTransaction, _: MessageOrigin) -> None:
        if await self._store.request(event.request_id, session=tx.session) is not None:
            # Routed again (a replay with another event id): it was decided once, and a second,
            # different posting must never come of it.
            log.info("resolution.already_decided")
            return
        now = self._clock()
        record: Document = {
            "channel": event.details.channel.value,
            "source_id": event.details.source_id,
            "customer_id": event.customer_id,
            "request_type": event.details.request_type.value if event.details.request_type else None,
            "queue": event.queue,
            "priority": event.priority.value,
            "sla_due_at": event.sla_due_at,
            "requesters": sorted(domain.requesters_of(event)),
            "state": "routed",
            "reason": None,
            "resolution_id": None,
            "routed_at": now,
            "event": event.model_dump(mode="json"),
            "wait_for_data_until": now + self._reference_wait,
        }
        await self._apply_strategy(event, record, tx, now)

    async def resume_waiting(self) -> None:
        """Try again, each in its own transaction, the requests waiting for reference data."""
        for request_id in await self._store.waiting_for_reference_data():
            with bound_request(request_id=request_id, correlation_id=None):
                try:
                    await self._consumer.run_in_transaction(
                        partial(self._resume, request_id),
                        source_key=f"resume:{request_id}:{self._clock().isoformat()}",
                    )
                except Exception as error:  # noqa: BLE001 - the next run tries again
                    log.warning("reference_wait.resume_failed", error=str(error))

    async def _resume(self, request_id: str, tx: LedgerTransaction) -> None:
        record = await self._store.request(request_id, session=tx.session)
        if record is None or record["state"] != "awaiting_reference_data":
            return  # decided meanwhile, by another replica
        event = RequestRouted.model_validate(record["event"])
        await self._apply_strategy(event, record, tx, self._clock())

    async def _apply_strategy(
        self, event: RequestRouted, record: Document, tx: LedgerTransaction, now: datetime
    ) -> None:
        facts = await self._store.facts(event, session=tx.session)
        proposal = strategies.propose(event, facts, write_off_tolerance=self._policy.write_off)
        if (
            isinstance(proposal, strategies.ForPerson)
            and proposal.awaiting is not None
            and now < record["wait_for_data_until"]
        ):
            # Reference data may come later than the request: wait for it (on hold) a while.
            if record["state"] != "awaiting_reference_data":
                record |= {"state": "awaiting_reference_data", "reason": proposal.reason}
                await self._store.save_request(event.request_id, record, session=tx.session)
                message = f"{proposal.awaiting} has not reached us yet; we will continue as soon as it does."
                self._status(
                    event.request_id,
                    record,
                    domain.Decision(RequestStatus.ON_HOLD, message, "awaiting_reference_data"),
                    tx,
                    now,
                )
            return
        if proposal is None:
            await self._store.save_request(event.request_id, record, session=tx.session)
        elif isinstance(proposal, strategies.ForPerson):
            # The candidates (payments that could be the one) stay with the request for a person.
            record |= {
                "state": "with_person",
                "reason": proposal.reason,
                "candidates": list(proposal.candidates),
            }
            await self._store.save_request(event.request_id, record, session=tx.session)
            self._status(
                event.request_id,
                record,
                domain.Decision(RequestStatus.ROUTED, proposal.explanation, proposal.reason),
                tx,
                now,
            )
        elif isinstance(proposal, strategies.NotSupported):
            record |= {"state": "closed", "reason": proposal.reason}
            await self._store.save_request(event.request_id, record, session=tx.session)
            self._status(
                event.request_id,
                record,
                domain.Decision(RequestStatus.RESOLVED, proposal.explanation, proposal.reason),
                tx,
                now,
            )
            closing = "Nothing has been posted and this request is closed."
            self._status(
                event.request_id,
                record,
                domain.Decision(RequestStatus.CLOSED, closing, proposal.reason),
                tx,
                now,
            )
        else:
            await self._propose_posting(event, proposal, record, tx, now)

    async def _propose_posting(
        self,
        event: RequestRouted,
        proposal: strategies.Posting | strategies.Postings,
        record: Document,
        tx: LedgerTransaction,
        now: datetime,
    ) -> None:
        """Post what the strategy proposes, once the policy's approvals are given.

        Several postings of one request (a dispute over several invoices, a payment split across
        invoices) are approved together: the policy applies to their sum, so splitting a claim
        across invoices never needs fewer approvals than the claim as a whole. Each posting has its
        own stable resolution id.
        """
        postings = proposal.postings if isinstance(proposal, strategies.Postings) else (proposal,)
        total = sum((posting.amount.amount for posting in postings), Decimal(0))
        required = (
            ()
            if all(posting.within_tolerance for posting in postings)
            else self._policy.required_roles(postings[0].kind, total)
        )
        resolutions = [domain.build_resolution(event, posting, approvals=(), now=now) for posting in postings]
        record |= {
            "pending": resolutions[0].model_dump(mode="json"),
            "pending_more": [resolution.model_dump(mode="json") for resolution in resolutions[1:]],
            "explanation": proposal.explanation,
            "required_roles": list(required),
            "approvals": [],
            "refusals": [],
            "policy_version": self._policy.version,
        }
        if not required:
            await self._issue(event.request_id, record, resolutions, tx, now)
            return
        record["state"] = "awaiting_approval"
        await self._store.save_request(event.request_id, record, session=tx.session)
        what = (
            "it is"
            if len(postings) == 1
            else f"these {len(postings)} postings (together {_total(postings)}) are"
        )
        message = (
            f"{proposal.explanation} Before {what} posted, approval is needed by "
            f"{approvals.describe_roles(required)} (policy {self._policy.version})."
        )
        self._status(
            event.request_id, record, domain.Decision(RequestStatus.AWAITING_APPROVAL, message), tx, now
        )

    async def _issue(
        self,
        request_id: str,
        record: Document,
        resolutions: Sequence[ErpResolution],
        tx: LedgerTransaction,
        now: datetime,
    ) -> None:
        """Record and emit the postings in this transaction: once per resolution id, ever."""
        ids = [resolution.resolution_id for resolution in resolutions]
        record |= {"state": "resolved", "resolution_id": ids[0], "resolution_ids": ids}
        await self._store.save_request(request_id, record, session=tx.session)
        for resolution in resolutions:
            if await self._store.resolution(resolution.resolution_id, session=tx.session) is not None:
                log.info("resolution.already_issued", resolution_id=resolution.resolution_id)
                continue
            await self._store.record_resolution(
                resolution.resolution_id,
                {
                    **resolution.model_dump(mode="json"),
                    "status": "issued",
                    "issued_at": now,
                    "ack_due_at": now + self._ack_timeout,
                    "escalated_at": None,
                },
                session=tx.session,
            )
            tx.emit(
                OutgoingMessage.of(
                    topic=ERP_RESOLUTIONS,
                    key=request_id,
                    event=resolution,
                    message_id=resolution.resolution_id,
                )
            )
        sent = ids[0] if len(ids) == 1 else ", ".join(ids)
        message = f"{record['explanation']} It has been sent for posting as {sent}."
        self._status(request_id, record, domain.Decision(RequestStatus.RESOLVED, message), tx, now)

    async def decide(self, decision: ApprovalDecision, tx: LedgerTransaction, _: MessageOrigin) -> None:
        request_id = decision.request_id
        record = await self._store.request(request_id, session=tx.session)
        if record is None:
            raise PermanentFailure("unknown_request", f"resolution knows no request {request_id}")
        if record["state"] != "awaiting_approval":
            raise PermanentFailure(
                "not_awaiting_approval", f"request {request_id} is {record['state']}, not awaiting approval"
            )
        now = self._clock()
        given = tuple(approvals.RecordedApproval(**approval) for approval in record["approvals"])
        required = tuple(record["required_roles"])
        approver = await self._directory.find(decision.approver)
        outcome = approvals.evaluate(
            decision,
            required=required,
            approvals=given,
            requesters=frozenset(record["requesters"]),
            preparer=self._policy.preparer,
            approver=approver,
            requester_ids=await self._directory_ids(record["requesters"]),
            approved_ids=await self._directory_ids(approval.approver for approval in given),
        )
        who = f"{decision.approver} ({decision.role})"
        occurrence = f"{decision.approver}:{decision.decision}:{decision.decided_at.isoformat()}"
        log.info(
            "approval.evaluated",
            approver=decision.approver,
            verdict=outcome.verdict.value,
            why=outcome.reason,
        )
        if outcome.verdict is approvals.Verdict.REFUSED:
            record["refusals"] = [
                *record["refusals"],
                {"approver": decision.approver, "role": decision.role, "reason": outcome.reason, "at": now},
            ]
            await self._store.save_request(request_id, record, session=tx.session)
            message = (
                f"The {decision.decision} by {who} was not counted: {outcome.explanation}. "
                f"Still needed: {approvals.describe_roles(outcome.still_needed)}."
            )
            self._status(
                request_id,
                record,
                domain.Decision(RequestStatus.AWAITING_APPROVAL, message, outcome.reason),
                tx,
                now,
                occurrence=occurrence,
            )
            return
        if outcome.verdict is approvals.Verdict.REJECTED:
            record |= {"state": "rejected", "reason": "approval_rejected", "rejected_by": decision.approver}
            await self._store.save_request(request_id, record, session=tx.session)
            message = f"Rejected by {who}: {outcome.explanation}. Nothing has been posted."
            self._status(
                request_id,
                record,
                domain.Decision(RequestStatus.REJECTED, message, "approval_rejected"),
                tx,
                now,
            )
            return
        # Counted under the person's directory id, whatever name the decision gave.
        approval = approvals.RecordedApproval(
            approver.id if approver is not None else decision.approver,
            decision.role,
            decision.decided_at.isoformat(),
        )
        record["approvals"] = [*record["approvals"], vars(approval)]
        if outcome.verdict is approvals.Verdict.COUNTED:
            await self._store.save_request(request_id, record, session=tx.session)
            message = f"Approved by {who}; still needed: {approvals.describe_roles(outcome.still_needed)}."
            self._status(
                request_id,
                record,
                domain.Decision(RequestStatus.AWAITING_APPROVAL, message, "approval_recorded"),
                tx,
                now,
                occurrence=occurrence,
            )
            return
        names = ", ".join(f"{approval['approver']} ({approval['role']})" for approval in record["approvals"])
        self._status(
            request_id, record, domain.Decision(RequestStatus.APPROVED, f"Approved by {names}."), tx, now
        )
        resolutions = [
            pending.model_copy(
                update={
                    "approvals": [ResolutionApproval.model_validate(one) for one in record["approvals"]],
                    "effective_on": now.date(),
                    "created_at": now,
                }
            )
            for pending in _pending_resolutions(record)
        ]
        await self._issue(request_id, record, resolutions, tx, now)

    async def _directory_ids(self, names: Iterable[str]) -> frozenset[str]:
        """The directory ids of the people ``names`` name (names of nobody it knows: left out)."""
        found = [await self._directory.find(name) for name in names]
        return frozenset(user.id for user in found if user is not None)

    async def acknowledge(self, ack: ErpAck, tx: LedgerTransaction, _: MessageOrigin) -> None:
        resolution = await self._store.resolution(ack.resolution_id, session=tx.session)
        if resolution is None or resolution["request_id"] != ack.request_id:
            raise PermanentFailure(
                "unknown_resolution", f"no resolution {ack.resolution_id} for request {ack.request_id}"
            )
        record = await self._store.request(ack.request_id, session=tx.session) or {
            "channel": "crm",
            "source_id": "",
            "customer_id": resolution.get("customer_id"),
        }
        now = self._clock()
        decision = domain.acknowledge(ack, ResolutionKind(resolution["kind"]))
        if decision.status is RequestStatus.CLOSED:
            siblings = [
                other
                for other in await self._store.resolutions_of(ack.request_id, session=tx.session)
                if other["_id"] != ack.resolution_id
            ]
            if any(other["status"] != "posted" for other in siblings):
                # One of several postings: the request closes when the ERP has posted them all.
                await self._store.record_ack(ack, request_state="resolved", at=now, session=tx.session)
                return
            if siblings:
                documents = [other.get("erp_document_id") for other in siblings] + [ack.erp_document_id]
                decision = domain.all_posted(len(siblings) + 1, [d for d in documents if d])
        state = "closed" if decision.status is RequestStatus.CLOSED else "with_person"
        await self._store.record_ack(ack, request_state=state, at=now, session=tx.session)
        self._status(
            ack.request_id, record, decision, tx, now, occurrence=f"{ack.resolution_id}:{ack.status}"
        )

    async def escalate_overdue(self) -> None:
        """Escalate, once each, the resolutions the ERP has not acknowledged in time."""
        for resolution_id in await self._store.overdue_resolutions(self._clock()):
            with bound_request(request_id=None, correlation_id=resolution_id):
                try:
                    await self._consumer.run_in_transaction(
                        partial(self._escalate, resolution_id), source_key=f"escalate:{resolution_id}"
                    )
                except Exception as error:  # noqa: BLE001 - the next run tries again
                    log.warning("ack_timeout.escalation_failed", error=str(error))

    async def _escalate(self, resolution_id: str, tx: LedgerTransaction) -> None:
        resolution = await self._store.resolution(resolution_id, session=tx.session)
        if (
            resolution is None
            or resolution["status"] != "issued"
            or resolution.get("escalated_at") is not None
        ):
            return  # acknowledged or escalated meanwhile
        now = self._clock()
        await self._store.mark_escalated(resolution_id, now, session=tx.session)
        request_id = resolution["request_id"]
        record = await self._store.request(request_id, session=tx.session) or {}
        what = domain.KIND_NAMES[ResolutionKind(resolution["kind"])]
        waited = int(self._ack_timeout.total_seconds())
        message = (
            f"The ERP has not confirmed the {what} {resolution_id} within {waited} seconds; "
            "operations has been alerted."
        )
        self._status(
            request_id,
            record,
            domain.Decision(RequestStatus.ESCALATED, message, "erp_ack_overdue"),
            tx,
            now,
            occurrence=resolution_id,
        )

    @staticmethod
    def _status(
        request_id: str,
        record: Document,
        decision: domain.Decision,
        tx: LedgerTransaction,
        now: datetime,
        *,
        occurrence: str = "",
    ) -> None:
        priority: Any = record.get("priority")
        tx.emit(
            outgoing_status(
                status_changed(
                    request_id=request_id,
                    channel=Channel(record.get("channel", "crm")),
                    source_id=record.get("source_id", ""),
                    customer_id=record.get("customer_id"),
                    status=decision.status,
                    reason=decision.reason,
                    message=decision.message,
                    queue=record.get("queue"),
                    priority=Priority(priority) if priority else None,
                    sla_due_at=record.get("sla_due_at"),
                    at=now,
                    occurrence=occurrence,
                )
            )
        )


def _pending_resolutions(record: Document) -> list[ErpResolution]:
    """The postings a request awaits approval for: ``pending``, then ``pending_more`` (several postings)."""
    return [ErpResolution.model_validate(one) for one in [record["pending"], *record.get("pending_more", [])]]


def _total(postings: Sequence[strategies.Posting]) -> str:
    currency = postings[0].amount.currency
    return str(
        Money(amount=sum((posting.amount.amount for posting in postings), Decimal(0)), currency=currency)
    )


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
    handlers = ResolutionHandlers(
        store,
        policy,
        runtime.consumer,
        ack_timeout=timedelta(seconds=settings.ack_timeout_seconds),
        reference_wait=timedelta(seconds=settings.reference_wait_seconds),
        clock=clock or (lambda: datetime.now(UTC)),
        directory=directory,
    )
    runtime.startup_hooks.append(store.ensure_indexes)
    runtime.every(settings.ack_check_seconds, handlers.escalate_overdue, name="escalate_overdue_acks")
    runtime.every(settings.ack_check_seconds, handlers.resume_waiting, name="resume_waiting_for_data")
    consumer = runtime.consumer

    runtime.subscribe_events(REQUEST_ROUTED, RequestRouted, handlers.resolve)

    @runtime.subscriber(APPROVALS)
    async def on_approval(message: KafkaMessage) -> None:
        await consumer.consume_batch(
            inbound_batch(message),
            model=ApprovalDecision,
            idempotency_key=lambda decision, _: (
                f"approval:{decision.request_id}:{decision.approver.strip().lower()}:"
                f"{decision.decision}:{decision.decided_at.isoformat()}"
            ),
            apply=handlers.decide,
            log_ids=lambda decision: (decision.request_id, None),
        )

    @runtime.subscriber(ERP_ACKS)
    async def on_erp_ack(message: KafkaMessage) -> None:
        await consumer.consume_batch(
            inbound_batch(message),
            model=ErpAck,
            idempotency_key=lambda ack, _: f"ack:{ack.resolution_id}:{ack.status}",
            apply=handlers.acknowledge,
            log_ids=lambda ack: (ack.request_id, ack.resolution_id),
        )

    subscribe_reference_views(runtime, store)

    return runtime.asgi_app(), settings
