"""The request page's forms: one small function per action, each taking the form as the API would.

A missing field raises ``ValueError`` (the page answers 422 "the form is not complete"); a refusal
of the workspace is a :class:`~services.workspace.permissions.Refusal`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.workspace.permissions import Person, Refusal
from services.workspace.routes.models import ResolutionBody
from services.workspace.service import Published, Workspace
from shared.contract import RequestType

Form = dict[str, str]
ConsoleAction = Callable[[Workspace, Person, str, Form, str | None], Awaitable[Published]]


async def perform(
    workspace: Workspace, person: Person, request_id: str, action: str, form: Form
) -> Published:
    """A console form's action, as the API would take it (404 for an action there is not)."""
    action_id = form.get("action_id") or None
    carry_out = CONSOLE_ACTIONS.get(action)
    if carry_out is None:
        raise Refusal("unknown_action", f"There is no action {action}.", status_code=404)
    return await carry_out(workspace, person, request_id, form, action_id)


async def pick_up(
    workspace: Workspace, person: Person, request_id: str, _: Form, action_id: str | None
) -> Published:
    return await workspace.pick_up(person, request_id, action_id=action_id)


async def release(
    workspace: Workspace, person: Person, request_id: str, _: Form, action_id: str | None
) -> Published:
    return await workspace.release(person, request_id, action_id=action_id)


async def assign(
    workspace: Workspace, person: Person, request_id: str, form: Form, action_id: str | None
) -> Published:
    return await workspace.assign(person, request_id, required(form, "assignee"), action_id=action_id)


async def note(
    workspace: Workspace, person: Person, request_id: str, form: Form, action_id: str | None
) -> Published:
    return await workspace.add_note(person, request_id, required(form, "text"), action_id=action_id)


async def reclassify(
    workspace: Workspace, person: Person, request_id: str, form: Form, action_id: str | None
) -> Published:
    kind = RequestType(required(form, "request_type")).value
    return await workspace.reclassify(person, request_id, kind, required(form, "reason"), action_id=action_id)


async def reroute(
    workspace: Workspace, person: Person, request_id: str, form: Form, action_id: str | None
) -> Published:
    return await workspace.reroute(
        person,
        request_id,
        required(form, "queue"),
        required(form, "reason"),
        form.get("priority") or None,
        action_id=action_id,
    )


async def ask_customer(
    workspace: Workspace, person: Person, request_id: str, form: Form, action_id: str | None
) -> Published:
    return await workspace.ask_customer(person, request_id, required(form, "question"), action_id=action_id)


async def decide_resolution(
    workspace: Workspace, person: Person, request_id: str, form: Form, action_id: str | None
) -> Published:
    body = ResolutionBody.model_validate(
        {
            "kind": required(form, "kind"),
            "invoice_id": form.get("invoice_id") or None,
            "payment_id": form.get("payment_id") or None,
            "amount": {"amount": form["amount"], "currency": form.get("currency") or "USD"}
            if form.get("amount")
            else None,
            "corrected_amount": None,
            "reason": required(form, "reason"),
        }
    )
    return await workspace.decide_resolution(
        person, request_id, body.model_dump(exclude={"action_id"}), action_id=action_id
    )


async def retry_posting(
    workspace: Workspace, person: Person, request_id: str, form: Form, action_id: str | None
) -> Published:
    return await workspace.retry_posting(
        person, request_id, required(form, "reason"), form.get("resolution_id") or None, action_id=action_id
    )


async def close(
    workspace: Workspace, person: Person, request_id: str, form: Form, action_id: str | None
) -> Published:
    return await workspace.close(
        person, request_id, required(form, "reason_code"), form.get("comment") or None, action_id=action_id
    )


async def approve(
    workspace: Workspace, person: Person, request_id: str, form: Form, _: str | None
) -> Published:
    return await _decide_approval(workspace, person, request_id, form, "approve")


async def reject(
    workspace: Workspace, person: Person, request_id: str, form: Form, _: str | None
) -> Published:
    return await _decide_approval(workspace, person, request_id, form, "reject")


async def _decide_approval(
    workspace: Workspace, person: Person, request_id: str, form: Form, decision: str
) -> Published:
    return await workspace.decide_approval(
        person, request_id, decision, role=form.get("role") or None, comment=form.get("comment") or None
    )


CONSOLE_ACTIONS: dict[str, ConsoleAction] = {
    "pick-up": pick_up,
    "release": release,
    "assign": assign,
    "note": note,
    "reclassify": reclassify,
    "reroute": reroute,
    "ask-customer": ask_customer,
    "resolution": decide_resolution,
    "retry-posting": retry_posting,
    "close": close,
    "approve": approve,
    "reject": reject,
}
"""Each form action of the request page (the last part of ``/requests/{id}/do/{action}``)."""


def required(form: Form, name: str) -> str:
    """A form field that must not be blank (``ValueError`` naming it otherwise)."""
    value = form.get(name, "").strip()
    if not value:
        raise ValueError(f"{name.replace('_', ' ')} is required")
    return value
