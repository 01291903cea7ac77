"""Every topic the system touches, by name, and the groups the code asks for.

The names, keys, owners and dead-letter twins are defined once, in :mod:`shared.registry`; this
module gives them the short constant names the rest of the code uses. The public topics are fixed
by the external contract (``../shared/CONTRACT.md``); the internal ones (``requests.captured.v1``
and friends) are ours to design and carry the events between our own services.
"""

from typing import Final

from shared import registry

# Inbound, from the CRM and email gateways (contract).
CRM_REQUESTS: Final = registry.CRM_REQUESTS.name
EMAIL_REQUESTS: Final = registry.EMAIL_REQUESTS.name

# Inbound reference data from the ERP and master-data systems (contract).
CUSTOMERS: Final = registry.CUSTOMERS.name
INVOICES: Final = registry.INVOICES.name
PAYMENTS: Final = registry.PAYMENTS.name
CONTRACTS: Final = registry.CONTRACTS.name

# Inbound decisions and acknowledgements (contract).
APPROVALS: Final = registry.APPROVALS.name
ERP_ACKS: Final = registry.ERP_ACKS.name

# Outbound (contract).
ERP_RESOLUTIONS: Final = registry.ERP_RESOLUTIONS.name
REQUEST_STATUS: Final = registry.REQUEST_STATUS.name

# Internal events between our own services.
REQUEST_CAPTURED: Final = registry.REQUEST_CAPTURED.name
REQUEST_VALIDATED: Final = registry.REQUEST_VALIDATED.name
REQUEST_SET_ASIDE: Final = registry.REQUEST_SET_ASIDE.name
"""Validation's other verdicts: held, rejected or linked as a duplicate, with the checks that ran."""
REQUEST_ROUTED: Final = registry.REQUEST_ROUTED.name
REQUEST_UPDATED: Final = registry.REQUEST_UPDATED.name
"""What is added to an existing request: replies by email, so far."""
REQUEST_ACTIONS: Final = registry.REQUEST_ACTIONS.name
"""What people did in the workspace (``shared/actions.py``): assignments and notes the workspace
owns, and the decisions it hands to the service that owns that part of the request."""
REQUEST_RESOLUTION: Final = registry.REQUEST_RESOLUTION.name
"""What resolution tells the people who work a request, as data (``shared/resolution_events.py``)."""

REQUEST_PATH: Final = frozenset(
    {CRM_REQUESTS, EMAIL_REQUESTS, REQUEST_CAPTURED, REQUEST_VALIDATED, REQUEST_ROUTED}
)
"""The topics a new request travels on from its sender to its resolution, one service to the next:
their consumers fetch with a short wait (``request_fetch_max_wait_ms``), since each hop adds its
wait to the request's time."""

REFERENCE_TOPICS: Final = tuple(
    topic.name for topic in registry.TOPICS if topic.group is registry.Group.REFERENCE
)
REQUEST_TOPICS: Final = tuple(
    topic.name for topic in registry.TOPICS if topic.group is registry.Group.REQUEST
)
"""The topics that carry the life of a request: what `crs watch` tails and audit records."""

DLQ_SUFFIX: Final = ".dlq"


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``."""
    return f"{topic}{DLQ_SUFFIX}"


REPLAYED_SERVICES: Final = tuple(service.name for service in registry.SERVICES)
"""The services that take replays of what they dead-lettered, each on a topic of its own."""


def replay_topic(service: str) -> str:
    """Where ``crs dlq replay`` sends a dead letter back to the one ``service`` that failed on it.

    Not the original topic: every consumer of that one (the ERP, the CRM) would read it again.
    The record keeps the original bytes and key; headers name where it came from (below).
    """
    return f"replays.{service}.v1"


REPLAY_FOR: Final = "x-replay-for"
"""Header of a replayed record: the service it is for."""
REPLAY_ORIGINAL_TOPIC: Final = "x-original-topic"
REPLAY_ORIGINAL_PARTITION: Final = "x-original-partition"
REPLAY_ORIGINAL_OFFSET: Final = "x-original-offset"
REPLAY_ORIGINAL_KEY: Final = "x-original-key"
"""Headers of a replayed record (as on a dead letter): where the original record was."""

CONSUMED_TOPICS: Final = tuple(topic.name for topic in registry.TOPICS if topic.dead_letter)
"""The topics whose consumers dead-letter what they cannot process (each has a ``.dlq`` twin)."""
ALL_TOPICS: Final = (
    *(topic.name for topic in registry.TOPICS),
    *(dead_letter_topic(topic) for topic in CONSUMED_TOPICS),
    *(replay_topic(service) for service in REPLAYED_SERVICES),
)
"""Every topic, dead-letter twins included, created at start with several partitions."""
