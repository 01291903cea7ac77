"""The workspace's view of a request, folded from the topics. Pure: no FastStream, no pymongo.

A request's document keeps what each topic said about it (deduplicated by each message's own
id, in lists sorted by time and id) and a ``summary`` computed from those lists alone. So the
document depends only on the set of messages, not on the order or the batches they arrived in:
reading the topics again (a rebuild) gives the same view.

Everything is stored as the messages' JSON (decimal strings, RFC 3339 times), never floats.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from shared.business_time import BusinessCalendar, add_working_time, working_time_between
from shared.status_order import LIFECYCLE, position_of

Document = dict[str, Any]

LIST_FIELDS = (
    "validations",
    "routings",
    "statuses",
    "resolutions",
    "acks",
    "decisions",
    "replies",
    "updates",
    "actions",
    "resolution_steps",
)
"""The lists a request's document keeps, each entry with a ``key`` (its message's identity)."""

FLAGS = frozenset({"sla_warning", "sla_breached", "escalated", "duplicate_of"})
CLOSED_STATUSES = frozenset({"resolved", "closed", "rejected", "duplicate_of"})
"""A request whose latest status is one of these is not open (flags aside)."""
FINISHED_STATUSES = frozenset({"closed", "rejected", "duplicate_of"})
APPROVER_ROLES = ("team_lead", "finance_manager")
REFUSAL_REASONS = frozenset(
    {
        "segregation_of_duties",
        "unknown_approver",
        "approver_disabled",
        "role_not_held",
        "already_approved",
        "role_not_required",
    }
)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 text (or a datetime) as an aware UTC datetime; None if it is not one."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def new_document(request_id: str) -> Document:
    """An empty view of a request: nothing known yet."""
    return {"_id": request_id, "captured": None, **{name: [] for name in LIST_FIELDS}, "summary": {}}


# --- Applying what a topic said ------------------------------------------------------------------


def add_entry(document: Document, field: str, entry: Mapping[str, Any], *, sort_by: str) -> bool:
    """Add ``entry`` to ``document[field]`` unless one with its ``key`` is there; keep the list sorted.

    Returns whether the document changed. Sorted by ``sort_by`` (a time) then key, so the list is
    the same whatever order the entries came in.
    """
    entries: list[Document] = document.setdefault(field, [])
    if any(existing.get("key") == entry["key"] for existing in entries):
        return False
    entries.append(dict(entry))
    entries.sort(key=lambda item: (_sort_time(item.get(sort_by)), str(item.get("key"))))
    return True


def _sort_time(value: Any) -> datetime:
    return parse_time(value) or datetime.min.replace(tzinfo=UTC)


def set_captured(document: Document, captured: Mapping[str, Any]) -> bool:
    """Keep the captured request; the latest capture wins (an updated CRM case is captured again)."""
    current = document.get("captured")
    if current is not None and (
        _sort_time(current.get("occurred_at")),
        str(current.get("key")),
    ) >= (_sort_time(captured.get("occurred_at")), str(captured.get("key"))):
        return False
    document["captured"] = dict(captured)
    return True


# --- The summary -----------------------------------------------------------------------------------


def current_status(statuses: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The latest step of the request's life (flags aside): later ``at``, then further along."""
    steps = [status for status in statuses if status.get("status") in LIFECYCLE]
    if not steps:
        return None
    return max(
        steps,
        key=lambda status: (
            position_of(str(status["status"]), _sort_time(status.get("at"))),
            str(status.get("key")),
        ),
    )


def summarise(document: Document) -> Document:
    """What the queues, the dashboard and the inbox read: computed from the document's lists only."""
    statuses = document.get("statuses", [])
    routings = document.get("routings", [])
    latest_routing = routings[-1] if routings else None
    status = current_status(statuses)
    return {
        "request_id": document["_id"],
        **_customer_and_request(document, latest_routing),
        **_route(latest_routing, status, statuses),
        **_status(status, statuses),
        **_work(document),
        **_approval(document),
    }


def _customer_and_request(document: Document, latest_routing: Mapping[str, Any] | None) -> Document:
    """Who asks and for what: the customer (as validated and routed) and the captured request."""
    details = (document.get("captured") or {}).get("details") or {}
    statuses = document.get("statuses", [])
    validations = document.get("validations", [])
    latest_validation = validations[-1] if validations else None
    customer = (latest_validation or {}).get("customer") or {}
    customer_id = (
        (latest_routing or {}).get("customer_id")
        or (latest_validation or {}).get("customer_id")
        or details.get("customer_id")
        or next((s.get("customer_id") for s in statuses if s.get("customer_id")), None)
    )
    return {
        "customer_id": customer_id,
        "customer_name": customer.get("name"),
        "customer_tier": (latest_routing or {}).get("customer_tier") or customer.get("tier"),
        "request_type": details.get("request_type"),
        "subject": details.get("subject"),
        "channel": details.get("channel") or next((s.get("channel") for s in statuses), None),
        "source_id": details.get("source_id") or next((s.get("source_id") for s in statuses), None),
        "requesters": requesters_of(details, customer_id),
        "amount": amount_at_stake(details),
        "disputed_amount": details.get("disputed_amount"),
    }


def _route(
    latest_routing: Mapping[str, Any] | None,
    status: Mapping[str, Any] | None,
    statuses: Sequence[Mapping[str, Any]],
) -> Document:
    """Where the request is: its queue, priority and SLA as routing set them."""
    return {
        "queue": _queue_of(latest_routing, statuses),
        "priority": (status or {}).get("priority") or (latest_routing or {}).get("priority"),
        "routed_at": (latest_routing or {}).get("occurred_at"),
        "sla_due_at": (latest_routing or {}).get("sla_due_at"),
    }


def _status(status: Mapping[str, Any] | None, statuses: Sequence[Mapping[str, Any]]) -> Document:
    """The current step of the request's life, its flags and where it was escalated."""
    status_name = status.get("status") if status else None
    return {
        "status": status_name,
        "status_reason": (status or {}).get("reason"),
        "status_message": (status or {}).get("message"),
        "status_at": (status or {}).get("at"),
        "open": status_name not in CLOSED_STATUSES if status_name else True,
        "flags": sorted({str(s["status"]) for s in statuses if s.get("status") in FLAGS}),
        "escalated_to": next(
            (s.get("queue") for s in reversed(statuses) if s.get("status") == "escalated"), None
        ),
    }


def _work(document: Document) -> Document:
    """When it came and was resolved, who works it, and the reasons its statuses gave."""
    captured = document.get("captured") or {}
    statuses = document.get("statuses", [])
    assignee, assigned_at = assignment_of(document.get("actions", []))
    return {
        "created_at": _first_time(
            [captured.get("occurred_at"), *(s.get("at") for s in statuses if s.get("status") == "received")]
        ),
        "resolved_at": _first_time(
            [s.get("at") for s in statuses if s.get("status") in ("resolved", "closed")]
        ),
        "assignee": assignee,
        "assigned_at": assigned_at,
        "reasons": sorted({str(s["reason"]) for s in statuses if s.get("reason")}),
    }


def _approval(document: Document) -> Document:
    """The approval state, who prepared the resolution, and the payments a person chooses from."""
    statuses = document.get("statuses", [])
    steps = document.get("resolution_steps", [])
    decisions = document.get("decisions", [])
    return {
        "approval": approval_from_steps(steps, decisions) or approval_state(statuses, decisions),
        "prepared_by": sorted(
            {
                str(a["actor"])
                for a in document.get("actions", [])
                if a.get("event_type") == "ResolutionDecided"
            }
        ),
        "candidates": candidates_of(steps),
    }


def _queue_of(routing: Mapping[str, Any] | None, statuses: Sequence[Mapping[str, Any]]) -> str | None:
    """The team queue the request is in: the latest ``routed`` status's queue, else routing's."""
    for status in reversed(statuses):
        if status.get("status") == "routed" and status.get("queue"):
            return str(status["queue"])
    return str(routing["queue"]) if routing and routing.get("queue") else None


def _first_time(values: Iterable[Any]) -> str | None:
    times = [parsed for parsed in (parse_time(value) for value in values) if parsed is not None]
    return min(times).isoformat() if times else None


def amount_at_stake(details: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The money a request is about: the disputed amount, else the requested credit limit."""
    for name in ("disputed_amount", "requested_credit_limit"):
        money = details.get(name)
        if isinstance(money, Mapping) and money.get("amount") not in (None, "0", "0.00"):
            return {"amount": str(money["amount"]), "currency": str(money.get("currency"))}
    return None


def requesters_of(details: Mapping[str, Any], customer_id: str | None) -> list[str]:
    """Who asked for the request: the contact's and the sender's addresses, and the customer id."""
    names = {
        (details.get("contact") or {}).get("email"),
        details.get("sender_email"),
        customer_id,
    }
    return sorted(name.strip().casefold() for name in names if isinstance(name, str) and name.strip())


def assignment_of(actions: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """Who has the request now, and since when: the assignments and releases in time order."""
    assignee: str | None = None
    since: str | None = None
    for action in actions:
        if action.get("event_type") == "RequestAssigned":
            assignee, since = str(action["assignee"]), action.get("occurred_at")
        elif action.get("event_type") == "RequestReleased":
            assignee, since = None, action.get("occurred_at")
    return assignee, since


# --- Approvals, as resolution's statuses tell them ------------------------------------------------

_ROLE_WORDS = {"a team lead": "team_lead", "a finance manager": "finance_manager"}
_NEEDED_BY = re.compile(r"approval is needed by (?P<roles>.+?) \(policy (?P<policy>[^)]+)\)")
_STILL_NEEDED = re.compile(r"[Ss]till needed: (?P<roles>[^.]+)\.?")
_NOT_COUNTED = re.compile(
    r"^The (?P<decision>approve|reject) by (?P<approver>\S+) \((?P<role>[^)]+)\) was not counted"
)


def roles_in(text: str) -> list[str]:
    """``a team lead and a finance manager`` -> ``["team_lead", "finance_manager"]``."""
    if text.strip() == "no approval":
        return []
    parts = re.split(r", | and ", text.strip().rstrip("."))
    roles = []
    for raw in parts:
        part = raw.strip()
        role = _ROLE_WORDS.get(part)
        if role is None and part.startswith("a "):
            role = part[2:].replace(" ", "_")
        if role:
            roles.append(role)
    return roles


def approval_state(
    statuses: Sequence[Mapping[str, Any]], decisions: Sequence[Mapping[str, Any]]
) -> Document | None:
    """What the approval policy asks for this request, what is still needed and who decided.

    Read from resolution's ``awaiting_approval`` statuses (their messages name the roles needed,
    the policy version, and what is still needed after each decision) and the decisions on
    ``requests.approvals.v1``. None if the request never waited for approval.
    """
    waiting = [s for s in statuses if s.get("status") == "awaiting_approval"]
    if not waiting:
        return None
    required: list[str] = []
    policy: str | None = None
    explanation: str | None = None
    for status in waiting:
        match = _NEEDED_BY.search(str(status.get("message") or ""))
        if match:
            required, policy = roles_in(match["roles"]), match["policy"]
            explanation = str(status.get("message"))
    still_needed = list(required)
    for status in waiting:
        match = _STILL_NEEDED.search(str(status.get("message") or ""))
        if match:
            still_needed = roles_in(match["roles"])
    refused = []
    for status in waiting:
        match = _NOT_COUNTED.search(str(status.get("message") or ""))
        if match and status.get("reason") in REFUSAL_REASONS:
            refused.append(
                {
                    "approver": match["approver"],
                    "role": match["role"],
                    "decision": match["decision"],
                    "reason": status.get("reason"),
                    "message": status.get("message"),
                }
            )
    return {
        "required": required,
        "still_needed": still_needed,
        "policy": policy,
        "explanation": explanation,
        "decisions": _counted(decisions, refused),
        "refused": refused,
    }


def _counted(decisions: Sequence[Mapping[str, Any]], refused: Sequence[Mapping[str, Any]]) -> list[Document]:
    """The decisions that count: all but those resolution refused (same approver, role and decision)."""
    refused_keys = {(str(r["approver"]).casefold(), r["role"], r["decision"]) for r in refused}
    return [
        {k: decision.get(k) for k in ("approver", "role", "decision", "comment", "decided_at")}
        for decision in decisions
        if (str(decision.get("approver")).casefold(), decision.get("role"), decision.get("decision"))
        not in refused_keys
    ]


# --- What resolution told as data (requests.resolution.v1) ---------------------------------------


def candidates_of(steps: Sequence[Mapping[str, Any]]) -> list[Document]:
    """The payments a person chooses from: those of resolution's latest ``PaymentCandidatesFound``."""
    found = [step for step in steps if step.get("event_type") == "PaymentCandidatesFound"]
    return [dict(candidate) for candidate in found[-1].get("candidates", [])] if found else []


def approval_from_steps(
    steps: Sequence[Mapping[str, Any]], decisions: Sequence[Mapping[str, Any]]
) -> Document | None:
    """The approval state from resolution's ``ApprovalRequested`` and ``ApprovalEvaluated`` events.

    None when resolution told none (a request from before it did: :func:`approval_state` reads
    its statuses then). The decisions of the latest request for approval count.
    """
    requested_at = [i for i, step in enumerate(steps) if step.get("event_type") == "ApprovalRequested"]
    if not requested_at:
        return None
    requested = steps[requested_at[-1]]
    evaluated = [
        step for step in steps[requested_at[-1] + 1 :] if step.get("event_type") == "ApprovalEvaluated"
    ]
    required = [str(role) for role in requested.get("required_roles", [])]
    still_needed = list(required)
    for step in evaluated:
        if step.get("verdict") in ("counted", "complete"):
            still_needed = [str(role) for role in step.get("still_needed", [])]
    refused = [
        {
            "approver": step.get("approver"),
            "role": step.get("role"),
            "decision": step.get("decision"),
            "reason": step.get("reason"),
            "message": step.get("explanation"),
        }
        for step in evaluated
        if step.get("verdict") == "refused"
    ]
    return {
        "required": required,
        "still_needed": still_needed,
        "policy": requested.get("policy_version"),
        "explanation": requested.get("explanation"),
        "decisions": _counted(decisions, refused),
        "refused": refused,
    }


@dataclass(frozen=True)
class Eligibility:
    """Whether a person may approve or reject a request now, and why (shown before they act)."""

    allowed: bool
    roles: tuple[str, ...]  # the roles they may act in
    explanation: str


def approval_eligibility(
    summary: Mapping[str, Any], *, user_id: str, names: Iterable[str], roles: Iterable[str]
) -> Eligibility:
    """Segregation of duties, checked before a person acts (resolution checks it again).

    A person cannot approve what they requested (any of their names among the requesters), what
    they prepared (they decided the resolution in the workspace), nor fill two roles on one
    request (they decided on it already, in whatever role); and only in a role still needed.
    """
    approval = summary.get("approval")
    held = [role for role in roles if role in APPROVER_ROLES]
    if summary.get("status") != "awaiting_approval" or not approval:
        return Eligibility(
            False,
            (),
            f"{summary.get('request_id')} is {summary.get('status') or 'not known yet'}, "
            "not awaiting approval.",
        )
    if not held:
        return Eligibility(
            False, (), "Only a team lead or a finance manager can approve or reject; you hold neither role."
        )
    conflict = _conflict_of_duties(summary, approval, user_id=user_id, names=names)
    if conflict is not None:
        return Eligibility(False, (), conflict)
    still = approval.get("still_needed") or []
    possible = tuple(role for role in held if role in still)
    if not possible:
        needed = " and ".join(_role_name(role) for role in still) or "nobody"
        return Eligibility(
            False,
            (),
            f"Still needed: {needed}; your role ({', '.join(_role_name(r) for r in held)}) "
            "is not among them.",
        )
    return Eligibility(
        True,
        possible,
        f"You can decide as {' or '.join(_role_name(role) for role in possible)}. "
        "You did not request this, did not prepare it and have not decided on it in another role.",
    )


def _conflict_of_duties(
    summary: Mapping[str, Any], approval: Mapping[str, Any], *, user_id: str, names: Iterable[str]
) -> str | None:
    """Why segregation of duties keeps this person from deciding (None if it does not)."""
    my_names = {name.casefold() for name in names}
    if my_names & set(summary.get("requesters") or ()):
        return "You requested this yourself: whoever asks for a posting cannot approve or reject it."
    if user_id in (summary.get("prepared_by") or ()):
        return "You decided this resolution: whoever prepares a posting cannot approve or reject it."
    mine = [d for d in approval.get("decisions", []) if str(d.get("approver") or "").casefold() in my_names]
    if mine:
        return (
            f"You already decided on this request as {_role_name(str(mine[0].get('role')))}: "
            "one person fills one role on a request."
        )
    return None


def _role_name(role: str) -> str:
    return role.replace("_", " ")


# --- The SLA clock, in business hours --------------------------------------------------------------


class ClockState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"


@dataclass(frozen=True)
class SlaView:
    """A routed request's SLA now: the target, what is left (negative: overdue) and when it is due."""

    state: ClockState
    target: timedelta
    left: timedelta
    due_at: datetime | None
    breached: bool


def sla_now(
    calendar: BusinessCalendar,
    *,
    routed_at: datetime | None,
    sla_due_at: datetime | None,
    statuses: Sequence[Mapping[str, Any]],
    now: datetime,
) -> SlaView | None:
    """The SLA clock as routing keeps it, worked out from what the events carry.

    The target in working time is the working time from routing to the due instant routing
    published (it added exactly that). The clock then pauses while ``on_hold``, stops at
    ``resolved``, finishes at ``closed``/``rejected`` and resumes on any other status, in the
    order the statuses happened.
    """
    if routed_at is None or sla_due_at is None:
        return None
    target = working_time_between(calendar, routed_at, sla_due_at)
    consumed = timedelta(0)
    running_since: datetime | None = routed_at
    state = ClockState.RUNNING
    routed_position = position_of("routed", routed_at)
    ordered = sorted(
        (
            (position_of(str(s["status"]), at), str(s["status"]), at)
            for s in statuses
            if s.get("status") in LIFECYCLE and (at := parse_time(s.get("at"))) is not None
        ),
    )
    for position, status, at in ordered:
        if position <= routed_position or state is ClockState.FINISHED:
            continue
        if status in ("on_hold", "resolved", "closed", "rejected"):
            if running_since is not None:
                consumed += working_time_between(calendar, running_since, max(at, running_since))
            running_since = None
            state = {
                "on_hold": ClockState.PAUSED,
                "resolved": ClockState.STOPPED,
            }.get(status, ClockState.FINISHED)
        elif state is not ClockState.RUNNING:
            running_since, state = at, ClockState.RUNNING
    breached = any(s.get("status") == "sla_breached" for s in statuses)
    if running_since is not None:
        used = consumed + working_time_between(calendar, running_since, max(now, running_since))
        left = target - consumed
        due = add_working_time(calendar, running_since, max(left, timedelta(0)))
        if now > due:
            overdue = working_time_between(calendar, due, now)
            return SlaView(state, target, -overdue, due, True)
        return SlaView(state, target, target - used, due, breached)
    return SlaView(state, target, target - consumed, None, breached or consumed > target)


def format_working_time(span: timedelta) -> str:
    """``-1 h 30 min``, ``2 d 3 h`` (a working day is counted as 8 h)."""
    sign = "-" if span < timedelta(0) else ""
    minutes = int(abs(span).total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    if hours >= 8:
        days, hours = divmod(hours, 8)
        return f"{sign}{days} d {hours} h"
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    return f"{sign}{minutes} min"


def sla_risk_key(sla: SlaView | None) -> tuple[int, float]:
    """Sort key: the most at risk first (overdue, then least time left); stopped clocks and none last."""
    if sla is None:
        return (3, 0.0)
    if sla.state is ClockState.RUNNING:
        return (0, sla.left.total_seconds())
    if sla.state is ClockState.PAUSED:
        return (1, sla.left.total_seconds())
    return (2, sla.left.total_seconds())


def money_text(money: Mapping[str, Any] | None) -> str:
    """``1,250.00 USD``; an empty text for no money."""
    if not money:
        return ""
    return f"{Decimal(str(money['amount'])):,.2f} {money.get('currency', '')}".strip()
