"""Approval decisions against what a posting needs, with segregation of duties. Pure functions.

Who is who:

- *requested*: the people the request came from: the contact's email, the email sender, and the
  customer id itself. None of them may approve what they asked for.
- *prepared*: the system preparer id of the policy (``crs-resolution``): the service computed the
  posting, so an approval under that id would be the preparer approving its own work.

A decision is refused (and not counted) when the approver is one of those, has already approved
this request (one person counts once), or claims a role that is not among those still needed.
A rejection by an eligible approver ends the request.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from shared.contract import ApprovalDecision

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
    return identity.strip().lower()


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
) -> Outcome:
    """What ``decision`` means for a request awaiting ``required`` approvals."""
    approver = _norm(decision.approver)
    still_needed = missing_roles(required, approvals)
    if approver == _norm(preparer):
        return Outcome(
            Verdict.REFUSED,
            "segregation_of_duties",
            f"{decision.approver} prepared this resolution and cannot approve or reject it",
            still_needed,
        )
    if approver in {_norm(requester) for requester in requesters}:
        return Outcome(
            Verdict.REFUSED,
            "segregation_of_duties",
            f"{decision.approver} requested this and cannot approve or reject it",
            still_needed,
        )
    if any(_norm(approval.approver) == approver for approval in approvals):
        return Outcome(
            Verdict.REFUSED,
            "already_approved",
            f"{decision.approver} has already approved; one person counts once",
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
        (*approvals, RecordedApproval(decision.approver, decision.role, decision.decided_at.isoformat())),
    )
    if after:
        return Outcome(Verdict.COUNTED, "approval_recorded", "", after)
    return Outcome(Verdict.COMPLETE)
