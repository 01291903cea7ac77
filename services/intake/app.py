"""Composition root of the intake service: wiring only, handlers translate transport to calls."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import structlog
from faststream.asgi import AsgiFastStream

from services.intake import domain
from services.intake.settings import IntakeSettings
from services.intake.store import IntakeStore, ThreadRequest
from shared.contract import CrmRequest, EmailRequest, RequestStatus, RequestStatusChanged
from shared.delivery import (
    InvalidHook,
    LedgerTransaction,
    MessageOrigin,
    OutgoingMessage,
    idempotent_by_itself,
)
from shared.events import CaseUpdated, EmailReplyAdded
from shared.identity import event_id_for
from shared.messages import outgoing_event, outgoing_status
from shared.runtime import build_runtime
from shared.settings import InfrastructureSettings
from shared.topics import CRM_REQUESTS, EMAIL_REQUESTS, REQUEST_CAPTURED, REQUEST_STATUS, REQUEST_UPDATED

log = structlog.get_logger(__name__)

# Captures computed before their transaction, kept until a later batch pushes them out (a batch
# that falls back to one message per transaction still finds them).
_PREPARED_KEPT = 2_000


def capture_crm_request(case: CrmRequest, *, now: datetime, analysed_chars: int) -> domain.Capture:
    """The capture of a case whose description is read only up to ``analysed_chars`` characters.

    The whole description is kept on the request; only the text classified and searched for
    amounts and dates is bounded, so that one message costs a bounded amount of work.
    """
    text = case.description
    if text is None or len(text) <= analysed_chars:
        return domain.capture_crm_request(case, now=now)
    bounded = case.model_copy(update={"description": text[:analysed_chars]})
    return _with_full_text(domain.capture_crm_request(bounded, now=now), text[:analysed_chars], text)


def capture_email(
    email: EmailRequest, *, now: datetime, analysed_chars: int, follows_up: str | None = None
) -> domain.Capture:
    """The capture of an email whose body is read only up to ``analysed_chars`` characters."""
    text = email.body_text
    if len(text) <= analysed_chars:
        return domain.capture_email(email, now=now, follows_up=follows_up)
    bounded = email.model_copy(update={"body_text": text[:analysed_chars]})
    captured = domain.capture_email(bounded, now=now, follows_up=follows_up)
    return _with_full_text(captured, text[:analysed_chars], text)


def _with_full_text(capture: domain.Capture, analysed: str, full: str) -> domain.Capture:
    details = capture.captured.details
    if details.description != analysed:  # the domain did not keep the text as given: leave it
        return capture
    captured = capture.captured.model_copy(
        update={"details": details.model_copy(update={"description": full})}
    )
    return dataclasses.replace(capture, captured=captured)


class IntakeHandlers:
    """What intake does with each inbound message, given its store.

    Reading a message's text (classification, documents, amounts, dates) is pure CPU work: it is
    done by :meth:`prepare_crm_request` / :meth:`prepare_email` on a worker thread before the
    batch's transaction opens, so neither the event loop (heartbeats, other subscribers) nor the
    database transaction waits for it.
    """

    def __init__(
        self,
        store: IntakeStore,
        *,
        analysed_chars: int,
        executor: ThreadPoolExecutor | None = None,
        reopen_window: timedelta = timedelta(days=30),
    ) -> None:
        self._store = store
        self._reopen_window = reopen_window
        self._analysed_chars = analysed_chars
        self._executor = executor
        self._prepared: OrderedDict[int, tuple[object, domain.Capture]] = OrderedDict()

    async def prepare_crm_request(self, case: CrmRequest) -> None:
        """Capture the case off the event loop, ahead of its transaction."""
        work = partial(capture_crm_request, case, now=datetime.now(UTC), analysed_chars=self._analysed_chars)
        self._keep(case, await self._off_loop(work))

    async def prepare_email(self, email: EmailRequest) -> None:
        """Understand the email off the event loop, ahead of its transaction."""
        work = partial(capture_email, email, now=datetime.now(UTC), analysed_chars=self._analysed_chars)
        self._keep(email, await self._off_loop(work))

    async def _off_loop(self, work: Callable[[], domain.Capture]) -> domain.Capture:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _keep(self, message: object, capture: domain.Capture) -> None:
        # Keyed by identity, holding the message itself so that its id cannot be reused meanwhile.
        self._prepared[id(message)] = (message, capture)
        while len(self._prepared) > _PREPARED_KEPT:
            self._prepared.popitem(last=False)

    def _prepared_capture(self, message: object, capture: Callable[[], domain.Capture]) -> domain.Capture:
        kept = self._prepared.get(id(message))
        if kept is not None and kept[0] is message:
            return kept[1]
        return capture()  # not prepared (a prepare that failed): the bounded work, here

    async def capture_crm_request(self, case: CrmRequest, tx: LedgerTransaction, _: MessageOrigin) -> None:
        """A case seen for the first time opens a request; seen again with other content, it is
        an update of that request (:class:`CaseUpdated`); with the same content, nothing.

        The idempotency key of a case includes its fingerprint, so the ledger lets a changed
        version through; the fingerprint kept on the request is what tells an update from a
        redelivery. A version older (by ``updated_at``) than the one taken in is stale: ignored.
        """
        now = datetime.now(UTC)
        request_id = domain.crm_request_id(case.case_id)
        fingerprint = domain.case_fingerprint(case)
        content = domain.case_content(case)
        known = await self._store.case_version(request_id, session=tx.session)
        if known is None and case.withdrawn:
            closed = domain.capture_withdrawn_case(case, now=now)
            record: dict[str, Any] = {
                "source_id": case.case_id,
                "channel": case.channel,
                "customer_id": case.customer_id,
            }
            record |= {"status": closed.status.value, "captured_at": now, "closed_at": now}
            record |= {"email_message_ids": [], "replies": [], "case_fingerprint": fingerprint}
            record |= {"case_content": content, "case_updated_at": case.updated_at}
            await self._store.save_new_request(request_id, record, session=tx.session)
            tx.emit(outgoing_status(closed))
            return
        capture = self._prepared_capture(
            case, partial(capture_crm_request, case, now=now, analysed_chars=self._analysed_chars)
        )
        if known is None:
            await self._save(
                capture,
                tx,
                email_message_ids=[],
                extra={
                    "case_fingerprint": fingerprint,
                    "case_content": content,
                    "case_updated_at": case.updated_at,
                },
            )
            return
        if known.fingerprint == fingerprint:
            return  # the same content again: a redelivery
        keep = partial(
            self._store.record_case_version,
            request_id,
            fingerprint=fingerprint,
            content=content,
            updated_at=case.updated_at or known.updated_at,
            session=tx.session,
        )
        if known.fingerprint is None:
            await keep(details=None)  # captured before fingerprints: this version is the baseline
            return
        if (
            known.updated_at is not None
            and case.updated_at is not None
            and case.updated_at < known.updated_at
        ):
            log.info("case.stale_version_ignored", updated_at=case.updated_at.isoformat())
            return
        details = capture.captured.details
        await keep(details=details.model_dump(mode="json"))
        tx.emit(
            outgoing_event(
                REQUEST_UPDATED,
                CaseUpdated(
                    event_id=event_id_for(request_id, "CaseUpdated", fingerprint),
                    request_id=request_id,
                    correlation_id=case.case_id,
                    occurred_at=now,
                    details=details,
                    changed=domain.changed_fields(known.content, content),
                    fingerprint=fingerprint,
                    withdrawn=case.withdrawn,
                    updated_at=case.updated_at,
                ),
            )
        )

    async def capture_email(self, email: EmailRequest, tx: LedgerTransaction, _: MessageOrigin) -> None:
        now = datetime.now(UTC)
        message_id = domain.normalize_message_id(email.message_id)
        thread = domain.thread_message_ids(email)
        earlier = await self._store.latest_request_for_email_thread(thread, session=tx.session)
        if earlier is not None and self._closed_too_long(earlier, now):
            # A late reply to a request closed long ago: a new request, linked to the old one.
            capture = capture_email(
                email, now=now, analysed_chars=self._analysed_chars, follows_up=earlier.request_id
            )
            await self._save(
                capture, tx, email_message_ids=[message_id], extra={"follows_up": earlier.request_id}
            )
            return
        if earlier is not None:
            request_id, source_id = earlier.request_id, earlier.source_id
            # A reply's subject repeats the thread's ("Re: invoice 42"): only its own text answers.
            answer = email.model_copy(update={"subject": "Reply"})
            understood = capture_email(answer, now=now, analysed_chars=self._analysed_chars).captured.details
            await self._store.add_reply(
                request_id, message_id, domain.reply_of(email), now, session=tx.session
            )
            tx.emit(
                outgoing_event(
                    REQUEST_UPDATED,
                    EmailReplyAdded(
                        event_id=event_id_for(request_id, "EmailReplyAdded", message_id),
                        request_id=request_id,
                        correlation_id=source_id,
                        occurred_at=now,
                        message_id=message_id,
                        sender=email.sender,
                        subject=email.subject,
                        received_at=email.received_at,
                        attachments=tuple(email.attachments),
                        understood=understood,
                        automatic=domain.is_automatic_reply(email),
                        reopens=earlier.closed_at is not None,
                    ),
                )
            )
            return
        capture = self._prepared_capture(
            email, partial(capture_email, email, now=now, analysed_chars=self._analysed_chars)
        )
        await self._save(capture, tx, email_message_ids=[message_id])

    def _closed_too_long(self, earlier: ThreadRequest, now: datetime) -> bool:
        return earlier.closed_at is not None and now - earlier.closed_at > self._reopen_window

    # Idempotent by the store itself: the latest closing and reopening are kept by ``$max``, so a
    # repeat or a late older status changes nothing (IntakeStore.mark_closed). No processed key.
    @idempotent_by_itself
    async def follow_status(
        self, change: RequestStatusChanged, tx: LedgerTransaction, _: MessageOrigin
    ) -> None:
        """Keep when a request was closed (and that a reopened one is not): a reply in its thread
        reopens it within the window, and opens a new request after it."""
        if change.status is RequestStatus.CLOSED:
            await self._store.mark_closed(change.request_id, change.at, session=tx.session)
        elif change.status is RequestStatus.REOPENED:
            await self._store.mark_reopened(change.request_id, change.at, session=tx.session)

    async def _save(
        self,
        capture: domain.Capture,
        tx: LedgerTransaction,
        *,
        email_message_ids: list[str],
        extra: dict[str, Any] | None = None,
    ) -> None:
        record = {
            **capture.captured.details.model_dump(mode="json"),
            "status": capture.received.status.value,
            "captured_at": capture.captured.occurred_at,
            "email_message_ids": email_message_ids,
            "replies": [],
            **(extra or {}),
        }
        await self._store.save_new_request(capture.request_id, record, session=tx.session)
        tx.emit(outgoing_event(REQUEST_CAPTURED, capture.captured))
        tx.emit(outgoing_status(capture.received))


def reject_unreadable(channel_group: str, store: IntakeStore) -> InvalidHook:
    """The dead-letter hook that also tells the sender, when it can be identified, what is wrong.

    A message may only reject what it would have created: when a request already exists for its
    case or email (an earlier, valid version), the bad message is only dead-lettered and the live
    request is left alone.
    """

    async def hook(payload: dict[str, Any], problems: str, _: MessageOrigin) -> Sequence[OutgoingMessage]:
        try:
            rejection = domain.reject_unreadable(channel_group, payload, problems, now=datetime.now(UTC))
        except UnicodeError:  # an id that is not text identifies nobody
            return ()
        if rejection is None:
            return ()
        email_id = domain.normalize_message_id(rejection.source_id) if channel_group == "email" else None
        if await store.has_request(rejection.request_id, email_message_id=email_id):
            return ()
        return (outgoing_status(rejection),)

    return hook


def build_app(
    settings: IntakeSettings | None = None, infrastructure: InfrastructureSettings | None = None
) -> tuple[AsgiFastStream, IntakeSettings]:
    """Build the intake service."""
    settings = settings or IntakeSettings()
    runtime = build_runtime(settings, infrastructure)
    store = IntakeStore(runtime.database)
    # One thread: reading texts is CPU work, one at a time is all the event loop should share.
    understanding = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-understanding")
    handlers = IntakeHandlers(
        store,
        analysed_chars=settings.max_analysed_chars,
        executor=understanding,
        reopen_window=timedelta(days=settings.reopen_window_days),
    )
    runtime.startup_hooks.append(store.ensure_indexes)

    runtime.subscribe(
        CRM_REQUESTS,
        CrmRequest,
        handlers.capture_crm_request,
        # The content is part of the key: a changed case is an update, the same one a redelivery.
        key=lambda case, _: f"crm:{case.case_id}:{domain.case_fingerprint(case)}",
        log_ids=lambda case: (domain.crm_request_id(case.case_id), case.case_id),
        on_invalid=reject_unreadable("crm", store),
        prepare=handlers.prepare_crm_request,
        prefetch=store.open_batch,
    )
    runtime.subscribe(
        EMAIL_REQUESTS,
        EmailRequest,
        handlers.capture_email,
        key=lambda email, _: f"email:{domain.normalize_message_id(email.message_id)}",
        log_ids=lambda email: (domain.email_request_id(email.message_id), email.message_id),
        on_invalid=reject_unreadable("email", store),
        prepare=handlers.prepare_email,
        prefetch=store.open_batch,
    )
    runtime.subscribe(
        REQUEST_STATUS,
        RequestStatusChanged,
        handlers.follow_status,
        key=lambda change, _: f"status:{change.event_id}",
        log_ids=lambda change: (change.request_id, None),
    )

    app = runtime.asgi_app()

    @app.after_shutdown
    async def stop_understanding() -> None:
        understanding.shutdown(wait=False, cancel_futures=True)

    return app, settings
