"""A small, realistic world for end-to-end tests: one customer, its invoice, a dispute and an email."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.topics import CONTRACTS, CUSTOMERS, INVOICES
from tests.support import unique

UPDATED_AT = "2026-11-01T08:00:00Z"


@dataclass(frozen=True)
class World:
    customer_id: str
    invoice_id: str
    contact_email: str
    customer: dict[str, Any]
    invoice: dict[str, Any]
    contract: dict[str, Any]

    @property
    def contract_id(self) -> str:
        return str(self.contract["contract_id"])

    def reference_records(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(topic, key, value) of the world's master data, customer first."""
        return [
            (CUSTOMERS, self.customer_id, self.customer),
            (CONTRACTS, self.contract_id, self.contract),
            (INVOICES, self.invoice_id, self.invoice),
        ]

    def dispute(self, case_id: str, expected: str = "1000.00") -> dict[str, Any]:
        return {
            "case_id": case_id,
            "channel": "portal",
            "customer_id": self.customer_id,
            "type": "billing_dispute",
            "subject": f"Invoice {self.invoice_id} is above our contract price",
            "description": "Cloud storage is billed at 600.00 per unit; our contract says 500.00.",
            "invoice_ids": [self.invoice_id],
            "disputed_amount": {"amount": "200.00", "currency": "USD"},
            "expected_amount": {"amount": expected, "currency": "USD"},
            "priority": "normal",
            "contact": {"name": "Jane Doe", "email": self.contact_email},
            "submitted_at": "2026-11-22T10:15:00Z",
            "unknown_future_field": "ignored",
        }

    def email(self, message_id: str) -> dict[str, Any]:
        number = self.invoice_id.replace("INV-", "inv ").replace("-", " ")
        return {
            "message_id": f"<{message_id}@mail.example>",
            "from": f"Jane Doe <{self.contact_email.upper()}>",
            "to": ["ar@billing.example"],
            "subject": f"Question about {number}",
            "body_text": (
                f"Hello,\n\nwe think we were overcharged on {self.invoice_id}. Can you check?\n\nJane"
            ),
            "received_at": "2026-11-22T11:00:00Z",
        }


def new_world() -> World:
    customer_id = unique("CUST")
    invoice_number = unique("X")[-6:]
    digits = "".join(str(int(char, 16) % 10) for char in invoice_number)
    invoice_id = f"INV-2026-{digits}"
    contact_email = f"jane.{customer_id.lower()}@acme.example"
    contract_id = f"CTR-2026-{digits[:4]}"
    customer = {
        "customer_id": customer_id,
        "name": "Acme Logistics GmbH",
        "status": "active",
        "kyc_status": "verified",
        "kyc_expires_on": "2027-12-31",
        "credit_limit": {"amount": "50000.00", "currency": "USD"},
        "tier": "key",
        "contacts": [{"name": "Jane Doe", "email": contact_email}],
        "updated_at": UPDATED_AT,
    }
    invoice = {
        "invoice_id": invoice_id,
        "customer_id": customer_id,
        "contract_id": contract_id,
        "issued_on": "2026-10-01",
        "due_on": "2026-10-31",
        "currency": "USD",
        "lines": [
            {"sku": "SKU-CLD-100", "description": "Cloud storage", "quantity": "2", "unit_price": "600.00"}
        ],
        "total": {"amount": "1200.00", "currency": "USD"},
        "open_amount": {"amount": "1200.00", "currency": "USD"},
        "status": "open",
        "updated_at": UPDATED_AT,
    }
    contract = {
        "contract_id": contract_id,
        "customer_id": customer_id,
        "valid_from": "2026-01-01",
        "valid_to": "2027-12-31",
        "currency": "USD",
        "prices": [{"sku": "SKU-CLD-100", "unit_price": "500.00"}],
        "payment_terms_days": 30,
        "updated_at": UPDATED_AT,
    }
    return World(customer_id, invoice_id, contact_email, customer, invoice, contract)
