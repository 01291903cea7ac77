"""The corpus harness judges what it sees strictly: a wrong outcome never passes as right.

The corpus itself runs end to end in ``tests/e2e/test_corpus.py``; here the judge is given
hand-made observations, and the corpus files are checked for shape and size.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import yaml

from tests.e2e.corpus import CORPUS_DIR, DeadLetter, Scenario, Seen, judge, load_corpus, load_file

SCENARIO = """
name: dispute
about: a dispute credited after a team lead's approval
steps:
  - crm: {case_id: "C-{r}", customer_id: "X", subject: s, submitted_at: "2026-11-23T10:00:00Z"}
  - after: {status: awaiting_approval}
    approve: {approver: lena.lead, role: team_lead}
expect:
  request:
    statuses: [received, validated, routed, awaiting_approval, approved, resolved, closed]
    resolutions:
      - {kind: credit_memo, amount: "1300.00 USD", invoice: "INV-1", approvals: [team_lead]}
"""


def scenario(text: str = SCENARIO, **changes: Any) -> Scenario:
    values = yaml.safe_load(text.replace("{r}", "1")) | changes
    return Scenario.model_validate(values)


def status(name: str, reason: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"status": name, "reason": reason, "message": extra.pop("message", "..."), **extra}


def posting(amount: str = "1300.00", **extra: Any) -> dict[str, Any]:
    return {
        "resolution_id": extra.pop("resolution_id", "RES-1"),
        "kind": "credit_memo",
        "invoice_id": "INV-1",
        "amount": {"amount": amount, "currency": "USD"},
        "approvals": [{"approver": "lena.lead", "role": "team_lead"}],
        **extra,
    }


HAPPY = [
    status("received"),
    status("validated"),
    status("routed"),
    status("awaiting_approval"),
    status("approved"),
    status("resolved"),
    status("closed"),
]


def seen(statuses: list[dict[str, Any]], postings: list[dict[str, Any]] | None = None, **extra: Any) -> Seen:
    return Seen(
        statuses={"request": statuses},
        request_ids={"request": "REQ-1"},
        postings={"request": [posting()] if postings is None else postings},
        sent=2,
        **extra,
    )


def test_the_expected_story_passes() -> None:
    assert judge(scenario(), seen(HAPPY)) == []


def test_flags_and_a_hold_for_reference_data_that_resumed_are_not_judged() -> None:
    noisy = [*HAPPY[:2], status("on_hold", "awaiting_reference_data"), *HAPPY[2:], status("sla_warning")]
    assert judge(scenario(), seen(noisy)) == []


@pytest.mark.parametrize(
    ("statuses", "problem"),
    [
        (HAPPY[:-1], "status closed not seen"),
        ([HAPPY[0], HAPPY[2], HAPPY[1], *HAPPY[3:]], "not seen (in order)"),
        ([*HAPPY, status("rejected", "approval_rejected")], "unexpected status rejected"),
        ([*HAPPY[:5], status("resolved"), *HAPPY[5:]], "unexpected status resolved"),
        ([*HAPPY, status("on_hold", "awaiting_reference_data")], "ends on_hold"),
    ],
    ids=["missing", "out-of-order", "extra-rejection", "resolved-twice", "stuck-on-hold-at-the-end"],
)
def test_a_wrong_story_fails(statuses: list[dict[str, Any]], problem: str) -> None:
    problems = judge(scenario(), seen(statuses))
    assert any(problem in text for text in problems), problems


@pytest.mark.parametrize(
    ("postings", "problem"),
    [
        ([], "posting credit_memo 1300.00 USD on INV-1 approved by ['team_lead'] not seen"),
        ([posting("1299.99")], "not seen"),
        ([posting(approvals=[])], "not seen"),
        ([posting(), posting(resolution_id="RES-2")], "unexpected posting"),
        ([posting(invoice_id="INV-2")], "not seen"),
    ],
    ids=["none", "wrong-amount", "no-approval", "a-second-posting", "wrong-invoice"],
)
def test_a_wrong_posting_fails(postings: list[dict[str, Any]], problem: str) -> None:
    problems = judge(scenario(), seen(HAPPY, postings))
    assert any(problem in text for text in problems), problems


def test_an_amount_is_compared_as_a_number() -> None:
    text = SCENARIO.replace('"1300.00 USD"', '"1300 USD"')
    assert judge(scenario(text), seen(HAPPY, [posting("1300.000")])) == []


def test_one_resolution_id_with_two_contents_fails() -> None:
    problems = judge(scenario(), seen(HAPPY, conflicting_postings=["RES-1"]))
    assert problems == ["one resolution id posted with two contents: RES-1"]


def test_a_step_never_sent_fails() -> None:
    problems = judge(scenario(), seen(HAPPY, waiting_for="request awaiting_approval"))
    assert problems[0].startswith("step 3 never sent")


def test_any_of_passes_on_either_reading_and_fails_on_neither() -> None:
    text = """
name: either
about: rejected or asked
steps:
  - crm: {case_id: "C-1", customer_id: "X", subject: s, submitted_at: "2026-11-23T10:00:00Z"}
expect:
  request:
    any_of:
      - statuses: [received, "rejected: ambiguous_sender"]
      - statuses: [received, "on_hold: awaiting_customer"]
"""
    assert judge(scenario(text), seen([status("received"), status("rejected", "ambiguous_sender")], [])) == []
    assert judge(scenario(text), seen([status("received"), status("on_hold", "awaiting_customer")], [])) == []
    problems = judge(scenario(text), seen([status("received"), status("rejected", "unknown_sender")], []))
    assert problems
    assert "no reading matched" in problems[0]


def test_never_and_mentions_and_duplicate_of() -> None:
    text = """
name: never
about: automatic, and the message names the invoice
steps:
  - crm: {case_id: "C-1", customer_id: "X", subject: s, submitted_at: "2026-11-23T10:00:00Z"}
expect:
  request:
    statuses: [received, {status: resolved, mentions: [INV-1]}]
    never: [awaiting_approval]
"""
    good = [status("received"), status("resolved", message="credit on inv-1")]
    assert judge(scenario(text), seen(good, [])) == []
    bad = [status("received"), status("awaiting_approval"), status("resolved", message="credit")]
    problems = judge(scenario(text), seen(bad, []))
    assert any("must not appear" in text for text in problems)
    assert any("mentions ['INV-1']" in text for text in problems)


def test_a_reply_that_opens_a_request_of_its_own_fails() -> None:
    text = """
name: reply
about: a reply joins its request
steps:
  - email: {message_id: "<a@x>", from: "a@x", to: [b@y], subject: s, body_text: b, received_at: "2026-11-23"}
  - as: answer
    email: {message_id: "<b@x>", from: "a@x", to: [b@y], subject: s, body_text: b, received_at: "2026-11-23"}
expect:
  request:
    statuses: [received]
  answer:
    joins: request
"""
    observed = Seen(statuses={"request": [status("received")], "answer": [status("received")]})
    assert judge(scenario(text), observed) == [
        "answer opened a request of its own instead of joining request"
    ]


def test_dead_letters_must_be_expected_and_expected_ones_must_come() -> None:
    text = """
name: refused
about: a connector fault
steps:
  - raw: {topic: erp.invoices.v1, key: "K-1", text: "not json"}
dead_letters:
  - {topic: erp.invoices.v1, reason: malformed_json}
"""
    letter = DeadLetter("erp.invoices.v1.dlq", "erp.invoices.v1", "K-1", "malformed_json", "not JSON")
    assert judge(scenario(text), Seen(dead_letters=[letter, letter])) == []
    assert judge(scenario(text), Seen()) == [
        "no dead letter on erp.invoices.v1.dlq with reason ['malformed_json']"
    ]
    stray = DeadLetter("crm.requests.v1.dlq", "crm.requests.v1", "C-1", "invalid_message", "subject missing")
    problems = judge(scenario(), seen(HAPPY, dead_letters=[stray]))
    assert problems == ["unexpected dead letter: crm.requests.v1 key C-1: invalid_message (subject missing)"]


def test_a_misspelt_field_in_the_corpus_is_an_error() -> None:
    with pytest.raises(ValueError, match="statuss"):
        scenario(SCENARIO.replace("    statuses:", "    statuss:"))


def test_the_corpus_has_at_least_forty_messages_of_each_kind_and_every_scenario_reads() -> None:
    scenarios = load_corpus(["reference.yaml", "crm.yaml", "email.yaml", "seeds.yaml"], "12345")
    kinds = Counter(step.kind for scenario in scenarios for step in scenario.steps)
    reference = sum(kinds[kind] for kind in ("customer", "invoice", "payment", "contract", "raw"))
    assert reference >= 40
    assert kinds["crm"] >= 40
    assert kinds["email"] >= 40
    assert len([s for s in scenarios if s.file == "crm.yaml"]) >= 40
    assert len([s for s in scenarios if s.file == "email.yaml"]) >= 40
    assert "{r}" not in repr([scenario.steps for scenario in scenarios])


@pytest.mark.parametrize("name", ["reference.yaml", "crm.yaml", "email.yaml", "seeds.yaml"])
def test_every_xfail_names_what_is_missing(name: str) -> None:
    for scenario in load_file(CORPUS_DIR / name, "12345"):
        if scenario.xfail:
            assert scenario.xfail.startswith(("issue 9 item", "classification", "policy:")), scenario.name


def test_a_mention_may_name_alternatives() -> None:
    text = """
name: asked
about: a question in the customer's language
steps:
  - crm: {case_id: "C-1", customer_id: "X", subject: s, submitted_at: "2026-11-23T10:00:00Z"}
expect:
  request:
    statuses: [{status: on_hold, reason: awaiting_customer, mentions: [invoice|rechnung]}]
"""
    asked_in_german = [status("on_hold", "awaiting_customer", message="Welche Rechnung meinen Sie?")]
    assert judge(scenario(text), seen(asked_in_german, [])) == []
    asked_nothing = [status("on_hold", "awaiting_customer", message="Bitte antworten Sie.")]
    assert judge(scenario(text), seen(asked_nothing, []))
