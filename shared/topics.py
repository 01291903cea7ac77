"""Every topic the system touches, in one place.

The public ones are fixed by the external contract (``../shared/CONTRACT.md``); the internal ones
(``requests.captured.v1`` and friends) are ours to design and carry the events between our own
services. Each consumed topic has a dead-letter twin, ``<topic>.dlq``.
"""

from typing import Final

# Inbound, from the CRM and email gateways (contract).
CRM_REQUESTS: Final = "crm.requests.v1"
EMAIL_REQUESTS: Final = "email.requests.v1"

# Inbound reference data from the ERP and master-data systems (contract).
CUSTOMERS: Final = "customers.master.v1"
INVOICES: Final = "erp.invoices.v1"
PAYMENTS: Final = "erp.payments.v1"
CONTRACTS: Final = "erp.contracts.v1"

# Inbound decisions and acknowledgements (contract).
APPROVALS: Final = "requests.approvals.v1"
ERP_ACKS: Final = "erp.acks.v1"

# Outbound (contract).
ERP_RESOLUTIONS: Final = "erp.resolutions.v1"
REQUEST_STATUS: Final = "requests.status.v1"

# Internal events between our own services.
REQUEST_CAPTURED: Final = "requests.captured.v1"
REQUEST_VALIDATED: Final = "requests.validated.v1"
REQUEST_SET_ASIDE: Final = "requests.set-aside.v1"
"""Validation's other verdicts: held, rejected or linked as a duplicate, with the checks that ran."""
REQUEST_ROUTED: Final = "requests.routed.v1"
REQUEST_UPDATED: Final = "requests.updated.v1"
"""What is added to an existing request: replies by email, so far."""
REQUEST_ACTIONS: Final = "requests.actions.v1"
"""What people did in the workspace (``shared/actions.py``): assignments and notes the workspace
owns, and the decisions it hands to the service that owns that part of the request."""

REFERENCE_TOPICS: Final = (CUSTOMERS, INVOICES, PAYMENTS, CONTRACTS)
REQUEST_TOPICS: Final = (
    CRM_REQUESTS,
    EMAIL_REQUESTS,
    REQUEST_CAPTURED,
    REQUEST_VALIDATED,
    REQUEST_SET_ASIDE,
    REQUEST_ROUTED,
    REQUEST_UPDATED,
    REQUEST_STATUS,
    ERP_RESOLUTIONS,
    ERP_ACKS,
    APPROVALS,
    REQUEST_ACTIONS,
)
"""The topics that carry the life of a request: what `crs watch` tails and audit records."""

DLQ_SUFFIX: Final = ".dlq"


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``."""
    return f"{topic}{DLQ_SUFFIX}"


CONSUMED_TOPICS: Final = (
    CRM_REQUESTS,
    EMAIL_REQUESTS,
    *REFERENCE_TOPICS,
    APPROVALS,
    ERP_ACKS,
    REQUEST_CAPTURED,
    REQUEST_VALIDATED,
    REQUEST_ROUTED,
    REQUEST_STATUS,
    ERP_RESOLUTIONS,
    # The workspace's view reads these too (and its own actions).
    REQUEST_SET_ASIDE,
    REQUEST_UPDATED,
    REQUEST_ACTIONS,
)
ALL_TOPICS: Final = (
    *dict.fromkeys((*CONSUMED_TOPICS, *REQUEST_TOPICS)),
    *(dead_letter_topic(topic) for topic in CONSUMED_TOPICS),
)
"""Every topic, dead-letter twins included, created at start with several partitions."""
