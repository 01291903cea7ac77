"""The words customers really use for a dispute, a payment question or a new address are classified.

Realistic wording, from the real-inputs corpus (tests/corpus): a credit note asked for, what was
charged set against what was agreed, a partial payment, "did you receive our payment", in German
and English; by email and in a CRM case without a type alike. Each one went to a person
unclassified (or to the wrong queue) before the vocabulary in
``services/intake/email_understanding/rules/classification.toml`` knew it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.intake import domain
from services.intake import email_understanding as eu
from shared.contract import CrmRequest, EmailRequest, RequestType

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
DISPUTE, PAYMENT, ACCOUNT = RequestType.BILLING_DISPUTE, RequestType.PAYMENT_QUERY, RequestType.ACCOUNT_UPDATE

EXAMPLES = [
    pytest.param(
        "Ihre Rechnung vom 03.11.2026",
        "in der Rechnung RE/2026/418 sind vier Komplettladungen mit je 1.390,00 EUR berechnet. "
        "Vereinbart sind 1.290,00 EUR pro Ladung. Bitte schicken Sie uns eine Gutschrift über 400,00 EUR.",
        DISPUTE,
        id="gutschrift-berechnet-vereinbart",
    ),
    pytest.param(
        "Fuel surcharge on INV-2026-41818",
        "Fuel surcharge was billed at $110.00 per load for 12 loads. Our contract rate is $95.00 per "
        "load. Please issue a credit for the difference.",
        DISPUTE,
        id="billed-at-contract-rate-credit",
    ),
    pytest.param(
        "re: inv 2026 4181 fuel",
        "fuel surcharge on inv 2026 4181 again at 105 instead of 95 per load, "
        "can you credit the difference pls",
        DISPUTE,
        id="credit-the-difference",
    ),
    pytest.param(
        "Cold storage rate invoice 4181842",
        "On invoice 4181842 the cold storage is charged at EUR 15,90 per pallet per week. Our contract "
        "says EUR 14,50. Could you please send us a credit note?",
        DISPUTE,
        id="credit-note",
    ),
    pytest.param(
        "Preise FTL Oktober",
        "in den Rechnungen RE/2026/4183 und RE/2026/4184 wurde jeweils 1.390,- je Komplettladung "
        "abgerechnet statt 1.290,- lt. Vertrag. Bitte korrigieren.",
        DISPUTE,
        id="abgerechnet-statt-laut-vertrag",
    ),
    pytest.param(
        "AW: WG: Lagerkosten Oktober",
        "bitte prüfen Sie die Lagerkosten in RE/2026/4182, die kommen uns zu hoch vor.",
        DISPUTE,
        id="zu-hoch",
    ),
    pytest.param(
        "Rechnung 912345106 falsch!!", "Malz wieder zum alten Preis berechnet!!", DISPUTE, id="falsch"
    ),
    pytest.param(
        "Teilzahlung RG 912345105",
        "wie telefonisch besprochen haben wir am 18.11.2026 eine erste Teilzahlung von 3.000,00 EUR auf "
        "Rechnung 912345105 geleistet, der Rest folgt im Dezember.",
        PAYMENT,
        id="teilzahlung",
    ),
    pytest.param(
        "Zahlung Rechnung 912345108",
        "Guten Tag, haben Sie unsere Zahlung für Rechnung 912345108 erhalten? Im Kundenportal steht sie "
        "noch offen. Gruß, Buchhaltung",
        PAYMENT,
        id="haben-sie-unsere-zahlung-erhalten",
    ),
    pytest.param(
        "Reclamación de pago - factura FV-2026/4183",
        "Hemos recibido un recordatorio de pago de la factura FV-2026/4183. Les informamos de que la "
        "pagamos el cinco de noviembre por transferencia, por la cantidad de 7.350,00 €.",
        PAYMENT,
        id="recordatorio-de-pago-is-not-a-dispute",
    ),
    pytest.param(
        "Change of remittance address",
        "Please update our account: from 1 December remittance advices should go to "
        "remittances@northwind.example instead of accounts.payable@northwind.example.",
        ACCOUNT,
        id="change-of-remittance-address",
    ),
]


@pytest.mark.parametrize(("subject", "text", "expected"), EXAMPLES)
def test_an_email_in_these_words_is_classified(subject: str, text: str, expected: RequestType) -> None:
    email = EmailRequest.model_validate(
        {
            "message_id": "<m1@customer.example>",
            "from": "Jane Doe <jane@customer.example>",
            "to": ["ar@kessler.example"],
            "subject": subject,
            "body_text": text,
            "received_at": NOW,
        }
    )
    details = domain.capture_email(email, now=NOW).captured.details
    assert details.request_type is expected, details.type_confidence
    assert details.type_confidence >= eu.CONFIDENT_ENOUGH


@pytest.mark.parametrize(("subject", "text", "expected"), EXAMPLES)
def test_a_crm_case_without_a_type_in_these_words_is_classified(
    subject: str, text: str, expected: RequestType
) -> None:
    case = CrmRequest.model_validate(
        {
            "case_id": "CASE-1",
            "customer_id": "CUST-1",
            "subject": subject,
            "description": text,
            "submitted_at": NOW,
        }
    )
    details = domain.capture_crm_request(case, now=NOW).captured.details
    assert details.request_type is expected, details.type_confidence


@pytest.mark.parametrize(
    "text",
    [
        "The invoice shows the wrong PO number, please reissue it",
        "Wir haben zu viel bezahlt, bitte erstatten Sie uns den Betrag.",
        "Please send us a copy of the invoice.",
    ],
)
def test_the_new_words_do_not_take_over_other_types(text: str) -> None:
    assert eu.classify(text).request_type is not DISPUTE
