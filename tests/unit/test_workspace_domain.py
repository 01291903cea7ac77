"""The workspace's pure parts: the view folded in any order, the SLA clock, segregation of duties,
permissions, dashboard figures and the local users file."""

from __future__ import annotations

import itertools
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crs.local_users import DEMO_USERS, prepare_local_users
from services.resolution.lifecycle import Approvers
from services.routing.rules import load_rules
from services.workspace import domain
from services.workspace.permissions import Action, Person, Refusal, check
from services.workspace.projection import change_of
from shared.contract import ApprovalDecision, RequestStatus, RequestType
from shared.directory import DirectoryUser, FileUserDirectory, Role, Team, verify_password
from shared.resolution_events import ApprovalEvaluated, ApprovalRequested, PaymentCandidatesFound
from shared.topics import REQUEST_RESOLUTION
from tests.unit.test_resolution_lifecycle import TERMS, TWO_PAYMENTS_ALIKE
from tests.unit.test_resolution_lifecycle import request as resolution_request
from tests.unit.test_resolution_strategies import POLICY, customer, person, usd
from tests.unit.test_resolution_strategies import facts as resolution_facts
from tests.workspace.events import awaiting_approval, routed_request, status

CALENDAR = load_rules().business_calendar()


def fold(records: list[tuple[str, str, Any]]) -> domain.Document:
    document = domain.new_document("REQ-1")
    for topic, _, value in records:
        change = change_of(topic, value)
        if change.field == "captured":
            domain.set_captured(document, change.entry)
        elif change.field:
            domain.add_entry(document, change.field, change.entry, sort_by=change.sort_by)
    document["summary"] = domain.summarise(document)
    return document


def test_the_view_is_the_same_whatever_order_the_topics_arrive_in() -> None:
    at = datetime(2026, 11, 23, 10, tzinfo=UTC)
    records = [
        *routed_request(
            "REQ-1", request_type="credit_limit_change", amount=None, credit_limit="58000.00", at=at
        ),
        awaiting_approval("REQ-1", at + timedelta(seconds=3)),
        status("REQ-1", RequestStatus.ON_HOLD, at + timedelta(seconds=4), reason="awaiting_customer"),
    ]
    first = fold(records)
    for order in itertools.islice(itertools.permutations(records), 0, 5000, 97):
        assert fold(list(order)) == first
    assert fold(records + records) == first  # redelivered: nothing twice
    summary = first["summary"]
    assert (summary["status"], summary["queue"], summary["open"]) == ("on_hold", "credit_control", True)
    assert summary["approval"]["required"] == ["team_lead"]
    assert summary["amount"] == {"amount": "58000.00", "currency": "USD"}


def test_the_sla_clock_runs_in_business_hours_and_pauses_on_hold() -> None:
    # Routed Friday 27 November 2026 at 15:00 in Zurich (14:00Z) with 4 working hours: due Monday 11:00.
    routed_at = datetime(2026, 11, 27, 14, tzinfo=UTC)
    due = datetime(2026, 11, 30, 10, tzinfo=UTC)
    clock = domain.sla_now(
        CALENDAR, routed_at=routed_at, sla_due_at=due, statuses=[], now=routed_at + timedelta(hours=1)
    )
    assert clock is not None
    assert (clock.target, clock.left, clock.due_at) == (timedelta(hours=4), timedelta(hours=3), due)
    # On hold from 16:00 Friday to 10:00 Monday: one hour used, three left from Monday 10:00, due 13:00.
    held = [
        {"status": "on_hold", "at": "2026-11-27T15:00:00Z", "key": "a"},
        {"status": "routed", "at": "2026-11-30T09:00:00Z", "key": "b"},
    ]
    clock = domain.sla_now(
        CALENDAR,
        routed_at=routed_at,
        sla_due_at=due,
        statuses=held[:1],
        now=datetime(2026, 11, 29, tzinfo=UTC),
    )
    assert clock is not None
    assert (clock.state, clock.left) == (domain.ClockState.PAUSED, timedelta(hours=3))
    clock = domain.sla_now(
        CALENDAR,
        routed_at=routed_at,
        sla_due_at=due,
        statuses=held,
        now=datetime(2026, 11, 30, 15, tzinfo=UTC),
    )
    assert clock is not None
    assert clock.due_at == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert clock.breached
    assert clock.left == -timedelta(hours=3)
    assert domain.format_working_time(clock.left) == "-3 h 00 min"


def _user(**fields: Any) -> DirectoryUser:
    return DirectoryUser(**{"id": "x", "display_name": "X", **fields})


def test_segregation_of_duties_is_explained_before_acting() -> None:
    summary = {
        "request_id": "REQ-1",
        "status": "awaiting_approval",
        "requesters": ["bob.smith@crs.example", "cust-1"],
        "prepared_by": ["ada.agent"],
        "approval": {
            "required": ["team_lead", "finance_manager"],
            "still_needed": ["finance_manager"],
            "decisions": [{"approver": "lena.lead", "role": "team_lead"}],
        },
    }

    def eligible(user_id: str, names: set[str], roles: list[str]) -> domain.Eligibility:
        return domain.approval_eligibility(summary, user_id=user_id, names=names, roles=roles)

    assert eligible("fred.finance", {"fred.finance"}, ["finance_manager"]).allowed
    assert (
        "You requested this"
        in eligible(
            "bob.smith", {"bob.smith", "bob.smith@crs.example"}, ["team_lead", "finance_manager"]
        ).explanation
    )
    assert (
        "one person fills one role"
        in eligible("lena.lead", {"lena.lead"}, ["team_lead", "finance_manager"]).explanation
    )
    assert (
        "You decided this resolution" in eligible("ada.agent", {"ada.agent"}, ["finance_manager"]).explanation
    )
    assert "not among them" in eligible("tom", {"tom"}, ["team_lead"]).explanation
    assert "neither role" in eligible("ada", {"ada"}, ["agent"]).explanation


def test_roles_in_resolutions_words() -> None:
    assert domain.roles_in("a team lead and a finance manager") == ["team_lead", "finance_manager"]
    assert domain.roles_in("no approval") == []


@pytest.mark.parametrize(
    ("roles", "teams", "action", "queue", "refused"),
    [
        ({Role.AGENT}, {Team.ACCOUNTS_RECEIVABLE}, Action.PICK_UP, "accounts_receivable", None),
        ({Role.AGENT}, {Team.CASH_APPLICATION}, Action.PICK_UP, "accounts_receivable", "other_team"),
        ({Role.AGENT}, {Team.ACCOUNTS_RECEIVABLE}, Action.APPROVE, "accounts_receivable", "role_not_allowed"),
        ({Role.AGENT}, {Team.ACCOUNTS_RECEIVABLE}, Action.ASSIGN, "accounts_receivable", "role_not_allowed"),
        ({Role.AUDITOR}, set(), Action.VIEW, "accounts_receivable", None),
        ({Role.AUDITOR}, set(), Action.NOTE, "accounts_receivable", "read_only"),
        ({Role.ADMIN}, set(), Action.ASSIGN, "collections", None),
        ({Role.ADMIN}, set(), Action.APPROVE, "collections", "role_not_allowed"),
        ({Role.TEAM_LEAD}, {Team.COLLECTIONS}, Action.APPROVE, "collections", None),
        ({Role.FINANCE_MANAGER}, {Team.COLLECTIONS}, Action.PICK_UP, "collections", "role_not_allowed"),
    ],
)
def test_every_action_is_authorised_by_role_and_team(
    roles: set[Role], teams: set[Team], action: Action, queue: str, refused: str | None
) -> None:
    person = Person(_user(roles=frozenset(roles), teams=frozenset(teams)))
    if refused is None:
        check(person, action, {"queue": queue})
    else:
        with pytest.raises(Refusal) as error:
            check(person, action, {"queue": queue})
        assert error.value.reason == refused


def test_the_local_users_file_is_made_once_with_argon2_hashes(tmp_path: Path) -> None:
    made = prepare_local_users(tmp_path)
    assert set(made.passwords) == set(DEMO_USERS)
    assert stat.S_IMODE(made.users_file.stat().st_mode) == 0o600
    directory = FileUserDirectory.load(made.users_file)
    for user in directory.users:
        if user.id in made.passwords:
            assert verify_password(user, made.passwords[user.id])
    assert made.passwords["lena.lead"] not in made.users_file.read_text(encoding="utf-8")
    assert "lena.lead" in made.announcement()
    again = prepare_local_users(tmp_path)
    assert again.passwords == {}
    assert made.passwords["lena.lead"] not in again.announcement()
    assert again.environment()["CRS_USER_DIRECTORY_PATH"] == str(made.users_file)


def told(*events: Any) -> list[tuple[str, str, Any]]:
    """Resolution's events on requests.resolution.v1, as the workspace reads them."""
    return [(REQUEST_RESOLUTION, event.request_id, event.model_dump(mode="json")) for event in events]


def test_the_candidate_payments_come_from_resolutions_data_not_its_sentences() -> None:
    at = datetime(2026, 11, 23, 10, tzinfo=UTC)
    the_request = resolution_request(RequestType.PAYMENT_QUERY)
    effects = the_request.consider(TWO_PAYMENTS_ALIKE, now=at, terms=TERMS)
    records = [
        *routed_request("REQ-1", request_type="payment_query", at=at),
        # The status's sentence is not read: a wording change breaks nothing.
        status("REQ-1", RequestStatus.ROUTED, at + timedelta(seconds=3), reason="several_payments_match"),
        *told(*(effect for effect in effects if isinstance(effect, PaymentCandidatesFound))),
    ]
    candidates = fold(records)["summary"]["candidates"]
    assert [(c["payment_id"], c["unapplied"]["amount"], c["received_on"]) for c in candidates] == [
        ("PAY-1", "1299.99", "2026-10-20"),
        ("PAY-2", "1299.99", "2026-10-21"),
    ]


def test_the_approval_state_comes_from_resolutions_data_not_its_sentences() -> None:
    at = datetime(2026, 11, 23, 10, tzinfo=UTC)
    the_request = resolution_request(
        RequestType.CREDIT_LIMIT_CHANGE, invoice_ids=(), requested_credit_limit=usd("80000.00")
    )
    asked = the_request.consider(resolution_facts(the_customer=customer()), now=at, terms=TERMS)
    refused = the_request.decide(
        ApprovalDecision(
            request_id="REQ-1", decision="approve", approver="nobody", role="team_lead", decided_at=at
        ),
        Approvers(None),
        now=at + timedelta(seconds=1),
        terms=TERMS,
    )
    counted = the_request.decide(
        ApprovalDecision(
            request_id="REQ-1", decision="approve", approver="lena.lead", role="team_lead", decided_at=at
        ),
        Approvers(person("lena.lead", "team_lead")),
        now=at + timedelta(seconds=2),
        terms=TERMS,
    )
    events = [e for e in [*asked, *refused, *counted] if isinstance(e, ApprovalRequested | ApprovalEvaluated)]
    records = [
        *routed_request(
            "REQ-1", request_type="credit_limit_change", amount=None, credit_limit="80000.00", at=at
        ),
        # Worded otherwise than the sentences the statuses carry: only the data counts.
        status("REQ-1", RequestStatus.AWAITING_APPROVAL, at + timedelta(seconds=3), message="Waiting."),
        *told(*events),
    ]
    approval = fold(records)["summary"]["approval"]
    assert (approval["required"], approval["still_needed"], approval["policy"]) == (
        ["team_lead", "finance_manager"],
        ["finance_manager"],
        POLICY.version,
    )
    assert [(r["approver"], r["reason"]) for r in approval["refused"]] == [("nobody", "unknown_approver")]


def test_a_changed_case_and_a_reply_are_shown_on_the_request() -> None:
    """Issue 9 item 5: what changed in a CRM case is recorded with the request (its timeline)."""
    from shared.events import CaseUpdated
    from shared.topics import REQUEST_UPDATED
    from tests.unit.test_validation_rules import details

    at = datetime(2026, 11, 23, 10, tzinfo=UTC)
    update = CaseUpdated(
        event_id="EVT-U",
        request_id="REQ-1",
        correlation_id="CASE-1",
        occurred_at=at,
        details=details(),
        changed=("description", "invoice_ids"),
        fingerprint="f",
    ).model_dump(mode="json")
    document = fold([*routed_request("REQ-1", at=at), (REQUEST_UPDATED, "REQ-1", update)])
    (shown,) = document["updates"]
    assert shown["changed"] == ["description", "invoice_ids"]
    assert "details" not in shown
