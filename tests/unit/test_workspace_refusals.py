"""What the workspace makes of a dead-lettered action: a refusal to show, or nothing, never an error."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.workspace.refusals import refusal_of

ACTION = {
    "schema_version": 1,
    "event_id": "7cd0c022-fd8e-5367-8646-3b2a7525b336",
    "request_id": "REQ-20AD6B2547",
    "correlation_id": "CASE-1",
    "occurred_at": "2026-11-30T15:17:00.720570Z",
    "actor": "ada.agent",
    "actor_role": "agent",
    "event_type": "ClosureRequested",
    "reason_code": "answered",
}
HEADERS = {
    "x-error-reason": "unknown_request",
    "x-error": "resolution knows no request REQ-20AD6B2547",
    "x-failed-service": "resolution",
    "x-failed-at": "2026-11-30T15:17:02+00:00",
}


def test_a_refused_action_names_who_refused_it_and_why() -> None:
    refusal = refusal_of(json.dumps(ACTION).encode(), HEADERS)
    assert refusal is not None
    assert refusal["_id"] == f"{ACTION['event_id']}:resolution"
    assert (refusal["request_id"], refusal["actor"], refusal["event_type"]) == (
        "REQ-20AD6B2547",
        "ada.agent",
        "ClosureRequested",
    )
    assert (refusal["refused_by"], refusal["reason"], refusal["refused_at"]) == (
        "resolution",
        "unknown_request",
        "2026-11-30T15:17:02+00:00",
    )
    assert refusal["detail"] == "resolution knows no request REQ-20AD6B2547"


def test_without_headers_the_refusal_still_shows_with_what_is_known() -> None:
    refusal = refusal_of(json.dumps(ACTION).encode(), {})
    assert refusal is not None
    assert (refusal["refused_by"], refusal["reason"], refusal["detail"]) == ("unknown", "refused", None)
    assert refusal["refused_at"] == ACTION["occurred_at"]


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json",
        b"[" * 100_000,
        b"[1, 2]",
        json.dumps({**ACTION, "request_id": None}).encode(),
        json.dumps({**ACTION, "event_id": 5}).encode(),
        json.dumps({key: value for key, value in ACTION.items() if key != "actor"}).encode(),
        json.dumps(ACTION).encode()[:40],  # cut to fit a dead letter
    ],
)
def test_what_is_not_a_readable_action_is_skipped(value: bytes) -> None:
    assert refusal_of(value, HEADERS) is None


@given(value=st.binary(max_size=300), headers=st.dictionaries(st.text(max_size=20), st.text(max_size=50)))
def test_no_record_makes_the_reader_fail(value: bytes, headers: dict[str, str]) -> None:
    refusal_of(value, headers)  # returns a refusal or None; raising would stall the partition
