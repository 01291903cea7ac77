"""Approval decisions against what a posting needs, with segregation of duties. Pure functions.

Who is who:

- *the approver*: a person of the user directory (:mod:`shared.directory`), found by the name the
  decision gives (user id, email or alias, any case), with the roles the directory says they hold.
- *requested*: the people the request came from: the contact's email, the email sender, and the
  customer id itself, and the directory's person behind any of them. None of them may approve
  what they asked for.
- *prepared*: the system preparer id of the policy (``crs-resolution``): the service computed the
  posting, so an approval under that id would be the preparer approving its own work.

A decision is refused (and not counted) when its approver prepared or requested the posting, is
not a user the directory knows (or is disabled), does not hold the role claimed, has already
approved this request under any name (one person counts once), or claims a role that is not among
those still needed. A rejection by an eligible approver ends the request.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from shared.contract import ApprovalDecision
from shared.directory import DirectoryUser, name_key

ROLE_NAMES = {"team_lead": "a team lead", "finance_manager": "a finance manager"}


class Verdict(StrEnum):
    REFUSED = "refused"
    COUNTED = "counted"
    COMPLETE = "complete"
    REJECTED = "rejected"


@dataclass(frozen=True)
class RecordedApproval:
    approver: str
    role: str
    decided_at: str


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str | None = None
    explanation: str = ""
    still_needed: tuple[str, ...] = ()


def _norm(identity: str) -> str:
    return name_key(identity)


def missing_roles(required: tuple[str, ...], approvals: tuple[RecordedApproval, ...]) -> tuple[str, ...]:
    """The required roles not yet filled, as a multiset (a role twice: two people needed)."""
    filled = Counter(approval.role for approval in approvals)
    missing = []
    for role in required:
        if filled[role] > 0:
            filled[role] -= 1
        else:
            missing.append(role)
    return tuple(missing)


def describe_roles(roles: tuple[str, ...]) -> str:
    """``("team_lead", "finance_manager")`` -> ``a team lead and a finance manager``."""
    names = [ROLE_NAMES.get(role, f"a {role.replace('_', ' ')}") for role in roles]
    if not names:
        return "no approval"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def evaluate(
    decision: ApprovalDecision,
    *,
    required: tuple[str, ...],
    approvals: tuple[RecordedApproval, ...],
    requesters: frozenset[str],
    preparer: str,
    approver: DirectoryUser | None,
    requester_ids: frozenset[str] = frozenset(),
    approved_ids: frozenset[str] = frozenset(),
    deciders: frozenset[str] = frozenset(),
) -> Outcome:
    """What ``decision`` means for a request awaiting ``required`` approvals.

    ``approver`` is the directory's person the decision names (None: nobody). ``requester_ids``
    are the directory ids of the requesters who are users; ``approved_ids`` the directory ids of
    those who approved already (the caller looks both up). ``deciders`` are the directory ids of
    the people who decided the resolution in the workspace: they prepared it.
    """
    given = _norm(decision.approver)
    still_needed = missing_roles(required, approvals)
    names = approver.names if approver is not None else frozenset({given})
    if _norm(preparer) in names or given == _norm(preparer):
        return Outcome(
            Verdict.REFUSED,
            "segregation_of_duties",
            f"{decision.approver} prepared this resolution and cannot approve or reject it",
            still_needed,
        )
    if given in {_norm(decider) for decider in deciders} or (
        approver is not None and approver.id in deciders
    ):
        return Outcome(
            Verdict.REFUSED,
            "segregation_of_duties",
            f"{decision.approver} decided this resolution and cannot approve or reject it",
            still_needed,
        )
    if given in {_norm(requester) for requester in requesters}:
        return Outcome(
            Verdict.REFUSED,
            "segregation_of_duties",
            f"{decision.approver} requested this and cannot approve or reject it",
            still_needed,
        )
    if approver is None:
        return Outcome(
            Verdict.REFUSED,
            "unknown_approver",
            f"{decision.approver} is not a user the directory knows",
            still_needed,
        )
    if approver.disabled:
        return Outcome(
            Verdict.REFUSED,
            "approver_disabled",
            f"{decision.approver} is disabled in the directory",
            still_needed,
        )
    if not approver.holds(decision.role):
        held = ", ".join(sorted(role.value for role in approver.roles)) or "none"
        return Outcome(
            Verdict.REFUSED,
            "role_not_held",
            f"{decision.approver} does not hold the role {decision.role} (holds: {held})",
            still_needed,
        )
    if approver.id in requester_ids or names & {_norm(requester) for requester in requesters}:
        return Outcome(
            Verdict.REFUSED,
            "segregation_of_duties",
            f"{decision.approver} ({approver.id}) requested this and cannot approve or reject it",
            still_needed,
        )
    already = approved_ids | {_norm(approval.approver) for approval in approvals}
    if approver.id in approved_ids or names & already:
        return Outcome(
            Verdict.REFUSED,
            "already_approved",
            f"{decision.approver} ({approver.id}) has already approved; one person counts once",
            still_needed,
        )
    eligible_roles = still_needed if decision.decision == "approve" else required
    if decision.role not in eligible_roles:
        return Outcome(
            Verdict.REFUSED,
            "role_not_required",
            f"the role {decision.role} is not among those needed ({describe_roles(eligible_roles)})",
            still_needed,
        )
    if decision.decision == "reject":
        return Outcome(Verdict.REJECTED, "approval_rejected", decision.comment or "no reason given")
    after = missing_roles(
        required,
        (*approvals, RecordedApproval(approver.id, decision.role, decision.decided_at.isoformat())),
    )
    if after:
        return Outcome(Verdict.COUNTED, "approval_recorded", "", after)
    return Outcome(Verdict.COMPLETE)
