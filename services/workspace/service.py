"""What the console and the API do when a person acts: check, then publish. No HTTP here.

Every action is checked on the server against the person's roles and teams and the request as the
view has it (:mod:`services.workspace.permissions`), then published as an event: the workspace's
own actions on ``requests.actions.v1`` (its view applies them when it reads them back, so the view
is built from the topics alone), approvals on ``requests.approvals.v1`` under the person's
directory id. Nothing is written into another service's database.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from services.workspace import domain
from services.workspace.permissions import Action, Person, Refusal, check
from services.workspace.store import WorkspaceStore
from shared.actions import (
    ClosureRequested,
    CustomerQuestionRequested,
    NoteAdded,
    PostingRetryRequested,
    ReclassificationRequested,
    RequestAssigned,
    RequestReleased,
    RerouteRequested,
    ResolutionDecided,
    WorkspaceAction,
    action_event_id,
)
from shared.contract import ApprovalDecision
from shared.directory import Team, UserDirectory
from shared.topics import APPROVALS, REQUEST_ACTIONS

Publish = Callable[[str, str, bytes], Awaitable[None]]
"""Publish ``value`` on ``topic`` with ``key`` and wait for the broker's acknowledgement."""
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Published:
    """What an action put on a topic."""

    topic: str
    event_id: str
    event_type: str
    request_id: str
    message: dict[str, Any]


class Workspace:
    def __init__(
        self,
        store: WorkspaceStore,
        directory: UserDirectory,
        publish: Publish,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.directory = directory
        self._publish = publish
        self._clock = clock

    async def summary_for(self, person: Person, request_id: str, action: Action) -> dict[str, Any]:
        summary = await self.store.summary(request_id)
        if summary is None:
            raise Refusal("unknown_request", f"The workspace knows no request {request_id}.", status_code=404)
        check(person, action, summary)
        return summary

    async def _act(
        self,
        person: Person,
        request_id: str,
        action: Action,
        build: Callable[[dict[str, Any]], Mapping[str, Any]],
        event_type: type[WorkspaceAction],
        *,
        action_id: str | None,
        must_be_open: bool = True,
    ) -> Published:
        summary = await self.summary_for(person, request_id, action)
        if must_be_open and not summary.get("open", True):
            raise Refusal(
                "request_closed",
                f"{request_id} is {summary.get('status')}: nothing more to do on it.",
                status_code=409,
            )
        fields = build(summary)
        event = event_type(
            event_id=action_event_id(request_id, action_id or uuid.uuid4().hex),
            request_id=request_id,
            correlation_id=str(summary.get("source_id") or request_id),
            occurred_at=self._clock(),
            actor=person.id,
            actor_role=person.acting_role(action),
            customer_id=summary.get("customer_id"),
            **fields,
        )
        kind = str(getattr(event, "event_type", event_type.__name__))
        return await self._send(REQUEST_ACTIONS, request_id, event, event.event_id, kind)

    async def _send(
        self, topic: str, key: str, message: BaseModel, event_id: str, event_type: str
    ) -> Published:
        await self._publish(topic, key, message.model_dump_json(by_alias=True).encode())
        return Published(topic, event_id, event_type, key, message.model_dump(mode="json", by_alias=True))

    # -- the workspace's own actions -------------------------------------------------------------

    async def pick_up(self, person: Person, request_id: str, *, action_id: str | None = None) -> Published:
        def build(summary: dict[str, Any]) -> dict[str, Any]:
            holder = summary.get("assignee")
            if holder == person.id:
                raise Refusal("already_yours", "You have this request already.", status_code=409)
            if holder is not None:
                raise Refusal(
                    "assigned_to_other",
                    f"{holder} has this request: they release it, or a team lead assigns it.",
                    status_code=409,
                )
            return {"assignee": person.id, "previous_assignee": None}

        return await self._act(
            person, request_id, Action.PICK_UP, build, RequestAssigned, action_id=action_id
        )

    async def assign(
        self, person: Person, request_id: str, assignee: str, *, action_id: str | None = None
    ) -> Published:
        target = await self.directory.find(assignee)
        if target is None or target.disabled:
            raise Refusal(
                "unknown_assignee", f"{assignee} is not an active user of the directory.", status_code=422
            )

        def build(summary: dict[str, Any]) -> dict[str, Any]:
            queue = summary.get("queue")
            if queue not in {team.value for team in target.teams}:
                raise Refusal(
                    "assignee_not_in_team",
                    f"{target.id} does not work in the {str(queue).replace('_', ' ')} team.",
                    status_code=422,
                )
            if summary.get("assignee") == target.id:
                raise Refusal("already_assigned", f"{target.id} has this request already.", status_code=409)
            return {"assignee": target.id, "previous_assignee": summary.get("assignee")}

        return await self._act(person, request_id, Action.ASSIGN, build, RequestAssigned, action_id=action_id)

    async def release(self, person: Person, request_id: str, *, action_id: str | None = None) -> Published:
        def build(summary: dict[str, Any]) -> dict[str, Any]:
            holder = summary.get("assignee")
            if holder is None:
                raise Refusal("not_assigned", "Nobody has this request.", status_code=409)
            if holder != person.id:
                check(person, Action.ASSIGN, summary)  # someone else's: a lead's (or admin's) call
            return {"previous_assignee": holder}

        return await self._act(
            person,
            request_id,
            Action.RELEASE,
            build,
            RequestReleased,
            action_id=action_id,
            must_be_open=False,
        )

    async def add_note(
        self, person: Person, request_id: str, text: str, *, action_id: str | None = None
    ) -> Published:
        return await self._act(
            person,
            request_id,
            Action.NOTE,
            lambda _: {"text": text},
            NoteAdded,
            action_id=action_id,
            must_be_open=False,
        )

    # -- decisions carried out by the owning services (routing, validation, resolution) -----------

    async def reclassify(
        self, person: Person, request_id: str, request_type: str, reason: str, *, action_id: str | None = None
    ) -> Published:
        return await self._act(
            person,
            request_id,
            Action.WORK,
            lambda _: {"request_type": request_type, "reason": reason},
            ReclassificationRequested,
            action_id=action_id,
        )

    async def reroute(
        self,
        person: Person,
        request_id: str,
        queue: str,
        reason: str,
        priority: str | None = None,
        *,
        action_id: str | None = None,
    ) -> Published:
        if queue not in {team.value for team in Team}:
            raise Refusal("unknown_queue", f"There is no queue {queue}.", status_code=422)
        return await self._act(
            person,
            request_id,
            Action.WORK,
            lambda _: {"queue": queue, "priority": priority or None, "reason": reason},
            RerouteRequested,
            action_id=action_id,
        )

    async def ask_customer(
        self, person: Person, request_id: str, question: str, *, action_id: str | None = None
    ) -> Published:
        return await self._act(
            person,
            request_id,
            Action.WORK,
            lambda _: {"question": question},
            CustomerQuestionRequested,
            action_id=action_id,
        )

    async def decide_resolution(
        self, person: Person, request_id: str, fields: Mapping[str, Any], *, action_id: str | None = None
    ) -> Published:
        return await self._act(
            person, request_id, Action.WORK, lambda _: dict(fields), ResolutionDecided, action_id=action_id
        )

    async def retry_posting(
        self,
        person: Person,
        request_id: str,
        reason: str,
        resolution_id: str | None = None,
        *,
        action_id: str | None = None,
    ) -> Published:
        return await self._act(
            person,
            request_id,
            Action.WORK,
            lambda _: {"resolution_id": resolution_id or None, "reason": reason},
            PostingRetryRequested,
            action_id=action_id,
        )

    async def close(
        self,
        person: Person,
        request_id: str,
        reason_code: str,
        comment: str | None = None,
        *,
        action_id: str | None = None,
    ) -> Published:
        return await self._act(
            person,
            request_id,
            Action.WORK,
            lambda _: {"reason_code": reason_code, "comment": comment or None},
            ClosureRequested,
            action_id=action_id,
        )

    # -- approvals --------------------------------------------------------------------------------

    async def eligibility(self, person: Person, summary: Mapping[str, Any]) -> domain.Eligibility:
        return domain.approval_eligibility(
            summary,
            user_id=person.id,
            names=person.user.names,
            roles=[role.value for role in person.roles],
        )

    async def decide_approval(
        self,
        person: Person,
        request_id: str,
        decision: str,
        *,
        role: str | None = None,
        comment: str | None = None,
    ) -> Published:
        """Approve or reject under the person's directory id, once segregation of duties allows it."""
        summary = await self.summary_for(person, request_id, Action.APPROVE)
        eligible = await self.eligibility(person, summary)
        if not eligible.allowed:
            raise Refusal("not_eligible", eligible.explanation, status_code=409)
        chosen = role or eligible.roles[0]
        if chosen not in eligible.roles:
            raise Refusal(
                "role_not_eligible",
                f"You cannot decide as {chosen.replace('_', ' ')}: {eligible.explanation}",
                status_code=409,
            )
        if decision == "reject" and not (comment and comment.strip()):
            raise Refusal(
                "comment_required", "A rejection needs a comment: the customer is told why.", status_code=422
            )
        message = ApprovalDecision(
            request_id=request_id,
            decision="approve" if decision == "approve" else "reject",
            approver=person.id,
            role=chosen,
            comment=comment or None,
            decided_at=self._clock(),
        )
        event_id = f"approval:{request_id}:{person.id}:{message.decision}:{message.decided_at.isoformat()}"
        return await self._send(APPROVALS, request_id, message, event_id, f"approval:{message.decision}")
