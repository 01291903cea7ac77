"""Audit keeps every record, poison included: what it cannot read it files as unreadable."""

from __future__ import annotations

import pytest

from services.audit.domain import facts_of
from shared.topics import CRM_REQUESTS, REQUEST_STATUS


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"case_id": "C-1", "n": ' + "7" * 5_000 + "}", "{not json", "[1, 2]"],
    ids=["deep", "long-number", "not-json", "not-an-object"],
)
def test_a_record_audit_cannot_read_is_filed_as_unreadable(text: str) -> None:
    facts = facts_of(CRM_REQUESTS, text)
    assert (facts.request_id, facts.event_type) == (None, "unreadable")


def test_an_id_that_is_not_unicode_text_attributes_the_record_to_no_request() -> None:
    facts = facts_of(CRM_REQUESTS, '{"case_id": "C-\\ud800", "customer_id": "\\udfff"}')
    assert (facts.request_id, facts.customer_id) == (None, None)
    status = facts_of(REQUEST_STATUS, '{"request_id": "R-\\ud800", "status": "rejected"}')
    assert status.request_id is None
    assert status.status == "rejected"
