"""Demo traffic: a varied, deterministic stream of requests over a demo dataset.

What `make run` trickles through the stack so an operator sees requests flow and end in every
outcome the services know today: disputes credited by the contract price (a dispute drawn twice
while the first is open is linked as a duplicate), emails matched to the sender's account,
questions left for a person, rejections (blocked accounts) and holds (a refund while KYC is
pending, a dispute about an invoice the ERP has not sent).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from crs.demo_data import AR_MAILBOX, DemoDataset
from shared.topics import CRM_REQUESTS, EMAIL_REQUESTS


def fresh_sources(dataset: DemoDataset, run_tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dataset's sample dispute and email with a case id and Message-ID of this run.

    Intake's database outlives the local broker: a case id or Message-ID of an earlier run is a
    redelivery to it, and would show nothing.
    """
    dispute, email = dataset.sample_dispute(), dataset.sample_email()
    dispute["case_id"] = f"{dispute['case_id']}-{run_tag}"
    local, _, domain = str(email["message_id"]).strip("<>").partition("@")
    email["message_id"] = f"<{local}-{run_tag}@{domain}>"
    return dispute, email


def demo_requests(
    dataset: DemoDataset, *, seed: int = 7, run_tag: str = ""
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Endless ``(topic, key, value)`` requests; the same seed gives the same sequence.

    ``run_tag`` goes into every case id and Message-ID, so that another run's requests are new
    requests (intake remembers every case and email it has seen).
    """
    tag = f"{run_tag}-" if run_tag else ""
    rng = random.Random(seed)  # noqa: S311 - demo traffic, not security
    active = [
        record.value
        for record in dataset.customers
        if record.value["status"] == "active" and record.value["kyc_status"] == "verified"
    ]
    blocked = [record.value for record in dataset.customers if record.value["status"] != "active"]
    kyc_pending = [
        record.value
        for record in dataset.customers
        if record.value["status"] == "active" and record.value["kyc_status"] == "pending"
    ]
    overpriced_open = [
        invoice_id
        for invoice_id in dataset.overpriced_invoice_ids
        if dataset.invoice(invoice_id)["status"] in ("open", "partially_paid")
        and dataset.customer(dataset.invoice(invoice_id)["customer_id"]) in active
    ]
    number = 0
    while True:
        number += 1
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        case_id = f"DEMO-{seed}-{tag}{number:06d}"
        roll = rng.random()
        if roll < 0.45 and overpriced_open:
            dispute = dataset.dispute_for(rng.choice(overpriced_open), case_id=case_id, submitted_at=now)
            yield CRM_REQUESTS, case_id, dispute
        elif roll < 0.70:
            customer = rng.choice(active)
            invoices = dataset.invoices_of(customer["customer_id"])
            mention = f" {rng.choice(invoices)['invoice_id']}" if invoices else ""
            contact = customer["contacts"][0]
            message_id = f"<demo-{seed}-{tag}{number:06d}@{contact['email'].rsplit('@', 1)[1]}>"
            yield (
                EMAIL_REQUESTS,
                message_id,
                {
                    "message_id": message_id,
                    "from": f"{contact['name']} <{contact['email']}>",
                    "to": [AR_MAILBOX],
                    "subject": f"Question about invoice{mention}",
                    "body_text": f"Hello,\n\ncould you send us a copy of invoice{mention}?\n\nThanks,\n"
                    f"{contact['name']}",
                    "received_at": now,
                },
            )
        elif roll < 0.85:
            customer = rng.choice(active)
            yield (
                CRM_REQUESTS,
                case_id,
                {
                    "case_id": case_id,
                    "customer_id": customer["customer_id"],
                    "type": "credit_limit_change",
                    "subject": "Please raise our credit limit",
                    "requested_credit_limit": {
                        "amount": f"{int(customer['credit_limit']['amount'].split('.')[0]) * 2}.00",
                        "currency": customer["credit_limit"]["currency"],
                    },
                    "submitted_at": now,
                },
            )
        elif roll < 0.93 and blocked:
            # Half from blocked accounts (rejected), half from accounts whose KYC is pending (held).
            customer = rng.choice(kyc_pending if kyc_pending and rng.random() < 0.5 else blocked)
            refunded = dataset.invoices_of(customer["customer_id"])[:1]
            yield (
                CRM_REQUESTS,
                case_id,
                {
                    "case_id": case_id,
                    "customer_id": customer["customer_id"],
                    "type": "refund",
                    "subject": "Refund of our credit balance",
                    "invoice_ids": [invoice["invoice_id"] for invoice in refunded],
                    "submitted_at": now,
                },
            )
        else:
            customer = rng.choice(active)
            yield (
                CRM_REQUESTS,
                case_id,
                {
                    "case_id": case_id,
                    "customer_id": customer["customer_id"],
                    "type": "billing_dispute",
                    "subject": "Disputed invoice",
                    "invoice_ids": ["INV-1999-999999"],
                    "submitted_at": now,
                },
            )
