"""Who may do what in the workspace: roles and teams, checked on the server for every action. Pure.

| action | agent | team lead | finance manager | auditor | admin |
| --- | --- | --- | --- | --- | --- |
| see queues and requests | own teams | own teams | own teams | all, read only | all |
| pick up, release own, note, work it (*) | own teams | own teams | note only, own teams | no | all teams |
| assign to someone, release someone else's | no | own teams | no | no | all teams |
| approve or reject | no | as team lead, own teams | as finance manager, own teams | no | no |
| dashboard | no | yes | yes | yes | yes |

(*) reclassify, re-route, ask the customer, decide a resolution, retry a posting, close.

A request belongs to the team of its queue (routing's queue; an escalation names a lead, not a
queue, so the request stays with its team). Admins hold no approval role: approving takes a team
lead or a finance manager.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.directory import DirectoryUser, Role


class Action(StrEnum):
    VIEW = "view"
    PICK_UP = "pick_up"
    ASSIGN = "assign"
    RELEASE = "release"
    NOTE = "note"
    WORK = "work"  # reclassify, re-route, ask the customer, decide a resolution, retry, close
    APPROVE = "approve"
    DASHBOARD = "dashboard"


class Refusal(Exception):
    """An action the person may not take, with the reason shown to them (HTTP 403 or 409)."""

    def __init__(self, reason: str, explanation: str, *, status_code: int = 403) -> None:
        super().__init__(explanation)
        self.reason = reason
        self.explanation = explanation
        self.status_code = status_code


_WORKERS = frozenset({Role.AGENT, Role.TEAM_LEAD, Role.ADMIN})
_ASSIGNERS = frozenset({Role.TEAM_LEAD, Role.ADMIN})
_NOTE_TAKERS = frozenset({Role.AGENT, Role.TEAM_LEAD, Role.FINANCE_MANAGER, Role.ADMIN})
_APPROVERS = frozenset({Role.TEAM_LEAD, Role.FINANCE_MANAGER})
_DASHBOARD = frozenset({Role.TEAM_LEAD, Role.FINANCE_MANAGER, Role.AUDITOR, Role.ADMIN})
_SEE_ALL = frozenset({Role.AUDITOR, Role.ADMIN})


@dataclass(frozen=True)
class Person:
    """The signed-in person as the workspace needs them."""

    user: DirectoryUser

    @property
    def id(self) -> str:
        return self.user.id

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset() if self.user.disabled else self.user.roles

    @property
    def teams(self) -> frozenset[str]:
        return frozenset(team.value for team in self.user.teams)

    @property
    def sees_all(self) -> bool:
        return bool(self.roles & _SEE_ALL)

    def visible_queues(self, all_queues: frozenset[str]) -> frozenset[str]:
        """The queues whose requests this person sees."""
        return all_queues if self.sees_all else self.teams

    def acting_role(self, action: Action) -> str:
        """The role recorded with an action (the strongest the person holds for it)."""
        for role in (Role.ADMIN, Role.TEAM_LEAD, Role.FINANCE_MANAGER, Role.AGENT):
            if role in self.roles and role in _allowed_roles(action):
                return role.value
        return next(iter(sorted(role.value for role in self.roles)), "none")


def _allowed_roles(action: Action) -> frozenset[Role]:
    return {
        Action.VIEW: frozenset(Role),
        Action.PICK_UP: _WORKERS,
        Action.ASSIGN: _ASSIGNERS,
        Action.RELEASE: _WORKERS,
        Action.NOTE: _NOTE_TAKERS,
        Action.WORK: _WORKERS,
        Action.APPROVE: _APPROVERS,
        Action.DASHBOARD: _DASHBOARD,
    }[action]


_WHAT = {
    Action.VIEW: "see this request",
    Action.PICK_UP: "pick requests up",
    Action.ASSIGN: "assign requests to others",
    Action.RELEASE: "release requests",
    Action.NOTE: "add notes",
    Action.WORK: "work on requests",
    Action.APPROVE: "approve or reject",
    Action.DASHBOARD: "see the team dashboard",
}


def check(person: Person, action: Action, summary: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`Refusal` unless ``person`` may take ``action`` (on the request ``summary``)."""
    if person.user.disabled:
        raise Refusal("disabled", "Your account is disabled.")
    allowed = _allowed_roles(action)
    if not person.roles & allowed:
        held = ", ".join(sorted(role.value.replace("_", " ") for role in person.roles)) or "no role"
        if Role.AUDITOR in person.roles and action is not Action.VIEW:
            raise Refusal(
                "read_only", f"Auditors read everything and act on nothing: you cannot {_WHAT[action]}."
            )
        raise Refusal("role_not_allowed", f"Your role ({held}) cannot {_WHAT[action]}.")
    if summary is None or action is Action.DASHBOARD:
        return
    queue = summary.get("queue")
    if (
        person.sees_all
        and (action is Action.VIEW or Role.ADMIN in person.roles)
        and action is not Action.APPROVE
    ):
        return
    if queue is None:
        if action is Action.VIEW:
            return  # not routed yet: anyone may look it up, nobody works it
        raise Refusal("not_routed", "This request is not in a team's queue yet.", status_code=409)
    if queue not in person.teams:
        raise Refusal(
            "other_team",
            f"This request is in the {queue.replace('_', ' ')} queue, which is not one of your teams.",
        )
