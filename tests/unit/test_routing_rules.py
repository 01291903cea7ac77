"""Routing: the rules file, the priority matrix, business time and the SLA clock.

Time here is a controllable clock: every instant is written out, in the calendar's own zone
(Europe/Zurich in the shipped rules), so a weekend, a holiday, a night and a daylight-saving
change can be crossed on purpose.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.routing.domain import ClockState, SlaClock, SlaTimer, decide_priority, decide_route
from services.routing.rules import (
    DEFAULT_RULES_FILE,
    RoutingRules,
    RoutingRulesError,
    load_rules,
    parse_rules,
)
from services.routing.settings import RoutingSettings
from shared.business_time import BusinessCalendar, add_working_time, working_time_between
from shared.contract import Priority, RequestStatus, RequestType
from shared.events import RequestDetails

ZURICH = ZoneInfo("Europe/Zurich")
RULES = load_rules()
CALENDAR = RULES.business_calendar()
SHIPPED = DEFAULT_RULES_FILE.read_text(encoding="utf-8")


def at(day: str, clock: str = "09:00") -> datetime:
    """An instant given in Zurich wall-clock time."""
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=ZURICH)


def hours(count: float) -> timedelta:
    return timedelta(hours=count)


def details(**change: Any) -> RequestDetails:
    values: dict[str, Any] = {
        "channel": "crm",
        "source_id": "CASE-1",
        "customer_id": "CUST-1",
        "request_type": RequestType.BILLING_DISPUTE,
        "subject": "Overcharged",
        "invoice_ids": ("INV-1",),
        "submitted_at": "2026-11-22T10:00:00Z",
    }
    values.update(change)
    return RequestDetails.model_validate(values)


def money(amount: str, currency: str = "USD") -> dict[str, str]:
    return {"amount": amount, "currency": currency}


# --- The rules file -------------------------------------------------------------------------


def test_the_shipped_rules_send_every_type_to_one_of_the_six_queues() -> None:
    assert RULES.version == "routing-2026.11.2"
    assert set(RULES.queues) == {
        "accounts_receivable",
        "cash_application",
        "credit_control",
        "collections",
        "master_data",
        "customer_service",
    }
    assert {request_type: RULES.queue_for(request_type) for request_type in RequestType} == {
        RequestType.BILLING_DISPUTE: "accounts_receivable",
        RequestType.INVOICE_CORRECTION: "accounts_receivable",
        RequestType.PAYMENT_QUERY: "cash_application",
        RequestType.CREDIT_LIMIT_CHANGE: "credit_control",
        RequestType.WRITE_OFF: "collections",
        RequestType.REFUND: "collections",
        RequestType.ACCOUNT_UPDATE: "master_data",
        RequestType.CONTRACT_QUERY: "customer_service",
        RequestType.SERVICE_REQUEST: "customer_service",
    }
    assert RULES.queue_for(None) == "customer_service"
    assert RULES.queues["collections"].escalation_target == "collections_lead"


def test_the_rules_file_comes_from_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    custom = tmp_path / "rules.toml"
    custom.write_text(SHIPPED.replace('version = "routing-2026.11.2"', 'version = "custom-1"'))
    monkeypatch.setenv("CRS_ROUTING_RULES_FILE", str(custom))
    settings = RoutingSettings()
    assert settings.rules_file == custom
    assert load_rules(settings.rules_file).version == "custom-1"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (("Europe/Zurich", "Europe/Atlantis"), "time_zone 'Europe/Atlantis' is not an IANA time zone"),
        (('refund = "collections"', 'refund = "treasury"'), "undefined queue(s) treasury"),
        (('refund = "collections"', ""), "[types] has no queue for refund"),
        (('unclassified = "customer_service"', ""), "[types] has no queue for unclassified"),
        (("[types]", '[types]\nrefunds = "collections"'), "unknown request type(s) refunds"),
        (("urgent = 4   # half a working day", ""), "[sla.working_hours] has no target for urgent"),
        (("low = 40", "low = 0"), "low must be more than zero hours"),
        (("warning_at = 0.75", "warning_at = 1.5"), "warning_at"),
        (
            ('high = "8000"', 'high = "90000"'),
            "[priority.amount.GBP] urgent (80000) must be above high (90000)",
        ),
        (('standard = "low"', ""), "[priority.tier] has no priority for tier(s) standard"),
        (('key = "normal"', 'key = "very"'), "priority.tier.key"),
        (("opens = 09:00:00", "opens = 18:00:00"), "opens (18:00:00) must be before closes (17:00:00)"),
        (('"friday"]', '"fri"]'), "working_days: fri"),
        (('escalation_target = "collections_lead"', ""), "queues.collections.escalation_target"),
        (("version =", "versoin ="), "version"),
        (("holidays = [", "holidays = ["), ""),  # unchanged: the shipped file is fine
    ],
)
def test_a_bad_rules_file_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, edit: tuple[str, str], problem: str
) -> None:
    path = tmp_path / "broken-rules.toml"
    assert edit[0] in SHIPPED
    path.write_text(SHIPPED.replace(edit[0], edit[1], 1))
    if not problem:
        assert load_rules(path).version == RULES.version
        return
    with pytest.raises(RoutingRulesError) as refused:
        load_rules(path)
    assert str(path) in str(refused.value)
    assert problem in str(refused.value)


def test_a_file_that_is_not_toml_or_not_there_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RoutingRulesError, match=r"rules\.toml is not valid TOML"):
        parse_rules("version = ", source="rules.toml")
    with pytest.raises(RoutingRulesError, match="cannot be read"):
        load_rules(tmp_path / "missing.toml")


def test_rules_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        RULES.version = "changed"  # type: ignore[misc]


# --- The priority matrix -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "tier", "priority"),
    [
        ({}, "standard", Priority.LOW),
        ({"disputed_amount": money("500.00")}, "standard", Priority.NORMAL),
        ({"disputed_amount": money("10000.00")}, "standard", Priority.HIGH),
        ({"disputed_amount": money("9999.99")}, "standard", Priority.NORMAL),
        ({"disputed_amount": money("100000.00")}, "standard", Priority.URGENT),
        ({"disputed_amount": money("8000.00", "GBP")}, "standard", Priority.HIGH),
        ({"disputed_amount": money("8000.00", "EUR")}, "standard", Priority.NORMAL),
        ({"disputed_amount": money("5.00", "JPY")}, "standard", Priority.NORMAL),  # unknown currency
        (
            {
                "request_type": RequestType.CREDIT_LIMIT_CHANGE,
                "requested_credit_limit": money("250000.00", "CHF"),
            },
            "standard",
            Priority.URGENT,
        ),
        ({}, "key", Priority.NORMAL),
        ({}, "strategic", Priority.HIGH),
        ({"disputed_amount": money("100.00")}, "strategic", Priority.HIGH),
        ({"request_type": RequestType.REFUND}, "standard", Priority.NORMAL),
        ({"request_type": RequestType.PAYMENT_QUERY}, "standard", Priority.LOW),
        ({"request_type": None}, "standard", Priority.LOW),
        ({"priority_hint": Priority.URGENT}, "standard", Priority.URGENT),
        ({"priority_hint": Priority.LOW, "disputed_amount": money("25000.00")}, "standard", Priority.HIGH),
        ({"priority_hint": Priority.NORMAL}, "strategic", Priority.HIGH),
    ],
)
def test_priority_is_the_highest_floor_raised_never_lowered_by_the_hint(
    change: dict[str, Any], tier: str, priority: Priority
) -> None:
    assert decide_priority(details(**change), customer_tier=tier, rules=RULES) is priority


def test_a_hint_overrides_when_the_rules_say_so() -> None:
    rules = parse_rules(SHIPPED.replace('hint = "raise_only"', 'hint = "override"'))
    lowered = details(priority_hint=Priority.LOW, disputed_amount=money("25000.00"))
    assert decide_priority(lowered, customer_tier="strategic", rules=rules) is Priority.LOW


def test_the_decision_names_queue_escalation_sla_in_working_hours_and_rule_version() -> None:
    friday_afternoon = at("2026-11-27", "15:00")
    decision = decide_route(
        details(disputed_amount=money("150000.00")),
        customer_tier="standard",
        now=friday_afternoon,
        rules=RULES,
        calendar=CALENDAR,
    )
    assert (decision.queue, decision.escalation_target) == ("accounts_receivable", "accounts_receivable_lead")
    assert decision.priority is Priority.URGENT
    assert (decision.sla_target, decision.sla_warning_after) == (hours(4), hours(3))
    # Two hours on Friday, the weekend does not count, two more on Monday morning.
    assert decision.sla_due_at == at("2026-11-30", "11:00")
    assert decision.rule_version == "routing-2026.11.2"


@pytest.mark.parametrize(
    ("priority", "routed", "due"),
    [
        (Priority.URGENT, at("2026-11-24", "10:00"), at("2026-11-24", "14:00")),
        (Priority.HIGH, at("2026-11-24", "10:00"), at("2026-11-25", "10:00")),
        (Priority.NORMAL, at("2026-11-24", "10:00"), at("2026-11-27", "10:00")),
        (Priority.LOW, at("2026-11-24", "10:00"), at("2026-12-01", "10:00")),
        # Christmas Eve, Christmas, St Stephen's day and a weekend in between.
        (Priority.HIGH, at("2026-12-23", "15:00"), at("2026-12-28", "15:00")),
        (Priority.LOW, at("2026-12-23", "09:00"), at("2027-01-04", "17:00")),
    ],
)
def test_sla_targets_are_working_time(priority: Priority, routed: datetime, due: datetime) -> None:
    assert add_working_time(CALENDAR, routed, RULES.sla.target(priority)) == due


# --- Business time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "add", "end"),
    [
        (at("2026-11-24", "10:00"), hours(3), at("2026-11-24", "13:00")),
        (at("2026-11-24", "13:00"), hours(4), at("2026-11-24", "17:00")),  # due at close of business
        (at("2026-11-24", "13:00"), hours(5), at("2026-11-25", "10:00")),  # the night does not count
        (at("2026-11-24", "06:30"), hours(1), at("2026-11-24", "10:00")),  # before opening
        (at("2026-11-24", "21:00"), hours(1), at("2026-11-25", "10:00")),  # after closing
        (at("2026-11-27", "16:00"), hours(4), at("2026-11-30", "12:00")),  # over a weekend
        (at("2026-11-28", "11:00"), hours(1), at("2026-11-30", "10:00")),  # from a Saturday
        (at("2026-12-24", "10:00"), hours(1), at("2026-12-28", "10:00")),  # from a holiday
        (at("2026-11-28", "11:00"), hours(0), at("2026-11-28", "11:00")),  # nothing added
        # Zurich leaves summer time in the night to Sunday 25 October 2026: the working day
        # stays 09:00 to 17:00 local, the hour the clocks go back never counts.
        (at("2026-10-23", "15:00"), hours(4), at("2026-10-26", "11:00")),
        (at("2026-03-27", "15:00"), hours(4), at("2026-03-30", "11:00")),  # into summer time
    ],
)
def test_adding_working_time(start: datetime, add: timedelta, end: datetime) -> None:
    assert add_working_time(CALENDAR, start, add) == end
    assert add_working_time(CALENDAR, start, add).tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "end", "elapsed"),
    [
        (at("2026-11-24", "10:00"), at("2026-11-24", "12:30"), hours(2.5)),
        (at("2026-11-24", "18:00"), at("2026-11-25", "08:00"), hours(0)),
        (at("2026-11-27", "16:00"), at("2026-11-30", "10:00"), hours(2)),  # weekend
        (at("2026-12-23", "16:00"), at("2026-12-28", "10:00"), hours(2)),  # holidays and weekend
        (at("2026-11-24", "12:00"), at("2026-11-24", "10:00"), hours(0)),  # backwards
        (at("2026-10-23", "16:00"), at("2026-10-26", "10:00"), hours(2)),  # over the clock change
        (at("2026-11-23", "09:00"), at("2026-11-30", "09:00"), hours(40)),  # a whole week
    ],
)
def test_working_time_between(start: datetime, end: datetime, elapsed: timedelta) -> None:
    assert working_time_between(CALENDAR, start, end) == elapsed


def test_business_time_needs_aware_instants_and_a_usable_calendar() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_working_time(CALENDAR, datetime(2026, 11, 24, 10, 0), hours(1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="negative"):
        add_working_time(CALENDAR, at("2026-11-24"), hours(-1))
    with pytest.raises(ValueError, match="working day"):
        BusinessCalendar(ZURICH, frozenset(), time(9), time(17))
    always_closed = BusinessCalendar(
        ZURICH,
        frozenset({0}),
        time(9),
        time(17),
        frozenset(date(2026, 1, 5) + timedelta(weeks=w) for w in range(600)),
    )
    with pytest.raises(ValueError, match="no working time"):
        add_working_time(always_closed, at("2026-01-01"), hours(1))


instants = st.datetimes(
    min_value=datetime(2026, 1, 1),  # noqa: DTZ001 - hypothesis draws naive bounds, made aware below
    max_value=datetime(2027, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
durations = st.integers(min_value=0, max_value=80 * 3600).map(lambda seconds: timedelta(seconds=seconds))


@given(instants, durations, durations)
def test_adding_a_then_b_is_adding_a_plus_b(start: datetime, first: timedelta, second: timedelta) -> None:
    assert add_working_time(CALENDAR, add_working_time(CALENDAR, start, first), second) == add_working_time(
        CALENDAR, start, first + second
    )


@given(instants, durations)
def test_working_time_between_undoes_adding(start: datetime, duration: timedelta) -> None:
    end = add_working_time(CALENDAR, start, duration)
    assert end >= start
    assert working_time_between(CALENDAR, start, end) == duration


@given(instants, instants, instants)
def test_working_time_adds_up_over_consecutive_spans(a: datetime, b: datetime, c: datetime) -> None:
    first, middle, last = sorted((a, b, c))
    assert working_time_between(CALENDAR, first, last) == working_time_between(
        CALENDAR, first, middle
    ) + working_time_between(CALENDAR, middle, last)


# --- The SLA clock ------------------------------------------------------------------------------


def started(routed: datetime, priority: Priority = Priority.HIGH) -> SlaClock:
    decision = decide_route(
        details(priority_hint=priority), customer_tier="standard", now=routed, rules=RULES, calendar=CALENDAR
    )
    return SlaClock.start(decision, at=routed)


def test_warning_at_three_quarters_and_breach_at_the_target_in_working_time() -> None:
    clock = started(at("2026-11-27", "15:00"))  # high: 8 working hours, warning after 6
    assert clock.due_at(CALENDAR, SlaTimer.WARNING) == at("2026-11-30", "13:00")
    assert clock.due_at(CALENDAR, SlaTimer.BREACH) == at("2026-11-30", "15:00")
    assert clock.due_timers(CALENDAR, at("2026-11-30", "12:59")) == ()
    assert clock.due_timers(CALENDAR, at("2026-11-30", "13:00")) == (SlaTimer.WARNING,)
    assert clock.due_timers(CALENDAR, at("2026-12-01", "09:00")) == (SlaTimer.WARNING, SlaTimer.BREACH)
    warned = clock.fired((SlaTimer.WARNING,))
    assert warned.next_due_at(CALENDAR) == at("2026-11-30", "15:00")
    assert warned.due_timers(CALENDAR, at("2026-11-30", "14:00")) == ()
    done = warned.fired((SlaTimer.BREACH,))
    assert done.next_due_at(CALENDAR) is None
    assert done.due_timers(CALENDAR, at("2027-06-01", "12:00")) == ()


def test_on_hold_pauses_the_clock_and_the_next_status_resumes_it_with_the_time_left() -> None:
    clock = started(at("2026-11-24", "09:00"))  # due Wednesday 09:00
    held = clock.after_status(CALENDAR, RequestStatus.ON_HOLD, at=at("2026-11-24", "11:00"))
    assert held.state is ClockState.PAUSED
    assert held.consumed == hours(2)
    assert held.next_due_at(CALENDAR) is None
    assert held.due_timers(CALENDAR, at("2026-12-31", "12:00")) == ()
    # Flags and a second on_hold change nothing while paused.
    assert held.after_status(CALENDAR, RequestStatus.SLA_WARNING, at=at("2026-11-26")) == held
    # Back with its team on Friday 15:00 with six working hours left: due Monday 13:00.
    resumed = held.after_status(CALENDAR, RequestStatus.ROUTED, at=at("2026-11-27", "15:00"))
    assert resumed.state is ClockState.RUNNING
    assert resumed.due_at(CALENDAR, SlaTimer.BREACH) == at("2026-11-30", "13:00")
    assert resumed.due_at(CALENDAR, SlaTimer.WARNING) == at("2026-11-30", "11:00")


def test_a_pause_over_a_holiday_costs_nothing_twice() -> None:
    clock = started(at("2026-12-23", "13:00"))  # high, due 28 December 13:00
    held = clock.after_status(CALENDAR, RequestStatus.ON_HOLD, at=at("2026-12-23", "16:00"))
    resumed = held.after_status(CALENDAR, RequestStatus.VALIDATED, at=at("2026-12-28", "09:00"))
    assert resumed.consumed == hours(3)
    assert resumed.due_at(CALENDAR, SlaTimer.BREACH) == at("2026-12-28", "14:00")


def test_resolved_stops_the_clock_closed_and_rejected_finish_it() -> None:
    clock = started(at("2026-11-24", "09:00"))
    resolved = clock.after_status(CALENDAR, RequestStatus.RESOLVED, at=at("2026-11-24", "10:00"))
    assert (resolved.state, resolved.next_due_at(CALENDAR)) == (ClockState.STOPPED, None)
    # The ERP refused the posting: the request is back in its queue and its clock runs on.
    back = resolved.after_status(CALENDAR, RequestStatus.ROUTED, at=at("2026-11-24", "14:00"))
    assert back.due_at(CALENDAR, SlaTimer.BREACH) == at("2026-11-25", "13:00")
    for final in (RequestStatus.CLOSED, RequestStatus.REJECTED):
        finished = back.after_status(CALENDAR, final, at=at("2026-11-24", "15:00"))
        assert finished.state is ClockState.FINISHED
        assert finished.after_status(CALENDAR, RequestStatus.ROUTED, at=at("2026-11-25")) == finished
        assert finished.next_due_at(CALENDAR) is None


def test_statuses_from_before_routing_and_flags_do_not_move_the_clock() -> None:
    clock = started(at("2026-11-24", "10:00"))
    assert clock.after_status(CALENDAR, RequestStatus.ON_HOLD, at=at("2026-11-24", "09:59")) == clock
    for flag in (RequestStatus.SLA_WARNING, RequestStatus.SLA_BREACHED, RequestStatus.ESCALATED):
        assert clock.after_status(CALENDAR, flag, at=at("2026-11-24", "11:00")) == clock
    assert clock.after_status(CALENDAR, RequestStatus.ROUTED, at=at("2026-11-24", "10:00")) == clock


def test_a_late_resume_stamped_before_the_pause_is_older_and_changes_nothing() -> None:
    clock = started(at("2026-11-24", "09:00"))
    held = clock.after_status(CALENDAR, RequestStatus.ON_HOLD, at=at("2026-11-24", "12:00"))
    # Statuses apply in the order they happened: one stamped before the pause came before it.
    assert held.after_status(CALENDAR, RequestStatus.ROUTED, at=at("2026-11-24", "11:00")) == held


def test_a_late_awaiting_approval_does_not_restart_a_stopped_clock() -> None:
    clock = started(at("2026-11-24", "09:00"))
    waiting = clock.after_status(CALENDAR, RequestStatus.AWAITING_APPROVAL, at=at("2026-11-24", "10:00"))
    resolved = waiting.after_status(CALENDAR, RequestStatus.RESOLVED, at=at("2026-11-24", "11:00"))
    # A sweeper republishes the approval request after the resolution: it is older, so ignored.
    late = resolved.after_status(CALENDAR, RequestStatus.AWAITING_APPROVAL, at=at("2026-11-24", "10:00"))
    assert late == resolved
    assert (late.state, late.next_due_at(CALENDAR)) == (ClockState.STOPPED, None)
    # Arriving in the wrong order from the start changes nothing either.
    first_resolved = clock.after_status(CALENDAR, RequestStatus.RESOLVED, at=at("2026-11-24", "11:00"))
    assert (
        first_resolved.after_status(CALENDAR, RequestStatus.AWAITING_APPROVAL, at=at("2026-11-24", "10:00"))
        == first_resolved
    )


def test_a_late_on_hold_does_not_pause_a_request_that_went_on() -> None:
    clock = started(at("2026-11-24", "09:00"))
    approved = clock.after_status(CALENDAR, RequestStatus.APPROVED, at=at("2026-11-24", "12:00"))
    assert approved.after_status(CALENDAR, RequestStatus.ON_HOLD, at=at("2026-11-24", "11:00")) == approved
    assert approved.state is ClockState.RUNNING


def test_two_statuses_of_one_instant_apply_in_the_order_of_a_requests_life() -> None:
    clock = started(at("2026-11-24", "09:00"))
    instant = at("2026-11-24", "11:00")
    closed = clock.after_status(CALENDAR, RequestStatus.CLOSED, at=instant)
    assert closed.after_status(CALENDAR, RequestStatus.RESOLVED, at=instant) == closed
    resolved = clock.after_status(CALENDAR, RequestStatus.RESOLVED, at=instant)
    assert resolved.after_status(CALENDAR, RequestStatus.AWAITING_APPROVAL, at=instant) == resolved
    assert resolved.after_status(CALENDAR, RequestStatus.CLOSED, at=instant).state is ClockState.FINISHED
    # The same status again (a repeat) is not newer than itself.
    assert resolved.after_status(CALENDAR, RequestStatus.RESOLVED, at=instant) == resolved


def test_rules_model_round_trips() -> None:
    assert RoutingRules.model_validate(RULES.model_dump()) == RULES


def test_the_service_refuses_to_start_on_a_bad_rules_file(tmp_path: Path) -> None:
    from services.routing.app import build_app

    path = tmp_path / "rules.toml"
    path.write_text(SHIPPED.replace('refund = "collections"', 'refund = "treasury"'))
    with pytest.raises(RoutingRulesError, match=r"rules\.toml is not usable: \[types\] sends requests"):
        build_app(RoutingSettings(rules_file=path))
