"""What an email asks for: sender, documents, amounts, dates and the type of request. No I/O.

Finance mailboxes receive replies, forwards, signatures full of numbers and half a dozen ways of
writing one invoice number or one amount. This package reads the *sender's own words* (the
subject, the text they typed and anything they forwarded; not the thread they quoted, not their
signature) and extracts what intake needs, conservatively:

* document numbers are *candidates* in any format (``4711``, ``RE/2026/0042``): validation
  resolves them against the customer's own documents, so a phone number or a postcode that names
  no invoice of the customer never becomes one;
* an amount is taken with a currency symbol or code next to it, or with two decimals or wording
  right in front of it;
* an amount is only called *disputed*, *expected*, *paid* or a *requested credit limit* when the
  words right in front of it say so, and never when it is a unit price, because resolution turns
  an expected amount into a credit memo;
* the request type comes from weighted rules (data, not code) and is ``None`` whenever the best
  type does not clearly win: such a request goes to a person, it is never defaulted.

One module per concern: :mod:`.sender`, :mod:`.quoting` (own text, quotes, forwards, signatures),
:mod:`.documents`, :mod:`.amounts`, :mod:`.dates`, :mod:`.classification` and :mod:`.understanding`
(an email or a text as a whole). The vocabulary is data in ``rules/``: ``classification.toml``
(the words of each request type, with weights), ``amounts.toml`` (the words that give an amount
its role), ``dates.toml`` (month and weekday names) and ``quoting.toml`` (sign-offs). Every regular
expression is linear on its input (bounded quantifiers, no nested repetition), because bodies are
up to 100,000 characters of whatever a sender typed.
"""

from services.intake.email_understanding.amounts import (
    AmountsFound,
    find_amounts,
    find_amounts_with_roles,
)
from services.intake.email_understanding.classification import (
    CONFIDENT_ENOUGH,
    RULES,
    SUBJECT_BONUS,
    Classification,
    Rule,
    classify,
)
from services.intake.email_understanding.dates import find_dates, find_payment_date
from services.intake.email_understanding.documents import (
    find_contract_numbers,
    find_invoice_numbers,
    find_payment_numbers,
)
from services.intake.email_understanding.quoting import BodyParts, own_text, split_body
from services.intake.email_understanding.sender import parse_sender
from services.intake.email_understanding.understanding import (
    EmailUnderstanding,
    TextFacts,
    understand_email,
    understand_text,
)

__all__ = [
    "CONFIDENT_ENOUGH",
    "MAX_STATED_AMOUNTS",
    "RULES",
    "SUBJECT_BONUS",
    "AmountsFound",
    "BodyParts",
    "Classification",
    "EmailUnderstanding",
    "Rule",
    "TextFacts",
    "classify",
    "find_amounts",
    "find_amounts_with_roles",
    "find_contract_numbers",
    "find_dates",
    "find_invoice_numbers",
    "find_payment_date",
    "find_payment_numbers",
    "own_text",
    "parse_sender",
    "split_body",
    "understand_email",
    "understand_text",
]
