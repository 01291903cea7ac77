"""The fuzz's messages are what it says they are: every bad one unreadable, every valid one readable."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import BaseModel

from crs.chaos_fuzz import INBOUND_TOPICS, MUTATIONS, generate
from shared.contract import (
    ApprovalDecision,
    CrmRequest,
    Customer,
    CustomerContract,
    EmailRequest,
    ErpAck,
    Invoice,
    Payment,
)
from shared.delivery import Inbound, MessageOrigin, ReliableConsumer
from shared.topics import (
    APPROVALS,
    CONTRACTS,
    CRM_REQUESTS,
    CUSTOMERS,
    EMAIL_REQUESTS,
    ERP_ACKS,
    INVOICES,
    PAYMENTS,
)
from tests.unit.fakes import FakeLedger, RecordingPublisher

MODELS: dict[str, type[BaseModel]] = {
    CRM_REQUESTS: CrmRequest,
    EMAIL_REQUESTS: EmailRequest,
    CUSTOMERS: Customer,
    INVOICES: Invoice,
    PAYMENTS: Payment,
    CONTRACTS: CustomerContract,
    APPROVALS: ApprovalDecision,
    ERP_ACKS: ErpAck,
}


@pytest.mark.parametrize("topic", INBOUND_TOPICS)
def test_every_bad_message_is_refused_and_every_valid_one_read_by_the_services_screening(topic: str) -> None:
    consumer = ReliableConsumer("fuzz", FakeLedger(), RecordingPublisher())
    messages = generate(topic, 2 * len(MUTATIONS), run="FZTEST", seed=3)
    kinds = Counter(message.kind for message in messages)
    for offset, message in enumerate(messages):
        inbound = Inbound(message.value, MessageOrigin(topic, 0, offset, message.key))
        screened = consumer._screen(
            inbound, MODELS[topic], lambda _m, _o: "key", lambda _m: (None, None), None
        )
        refused = getattr(screened, "reason", None)
        if message.kind == "valid":
            assert refused is None, (message.kind, getattr(screened, "detail", ""))
        else:
            assert refused is not None, (message.kind, message.value[:200])
    assert kinds["valid"] == 2 * len(MUTATIONS) // 4  # one valid message per key, four bad ones
    assert len(set(kinds) - {"valid"}) >= len(MUTATIONS) - 6  # every kind that applies to the topic


def test_the_valid_messages_share_their_keys_with_bad_ones_and_keys_are_new_each_run() -> None:
    first = generate(CRM_REQUESTS, 40, run="FZA", seed=1)
    second = generate(CRM_REQUESTS, 40, run="FZB", seed=1)
    valid_keys = {message.key for message in first if message.kind == "valid"}
    bad_keys = {message.key for message in first if message.kind != "valid"}
    assert valid_keys == bad_keys
    assert not valid_keys & {message.key for message in second}
    assert [message.kind for message in first] == [message.kind for message in second]  # the seed decides
