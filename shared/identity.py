"""Stable identifiers derived from what a message already says.

Deriving ids (instead of drawing random ones) is what makes a redelivered or republished message
land on the same request, the same event and the same ERP resolution, whichever replica handles
it and however often it is retried.
"""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("5b0f2d8e-3c1a-4f7e-9a55-0c1f6e2d7a41")


def stable_id(*parts: str) -> str:
    """A UUID derived from ``parts``: the same parts give the same id everywhere."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def request_id_for(channel_group: str, source_id: str) -> str:
    """Our request id for a CRM case (``crm``, portal included) or an email (``email``).

    Portal and CRM cases share ``crm.requests.v1`` and the CRM's case ids, so they share a group.
    """
    return "REQ-" + stable_id("request", channel_group, source_id)[:18].upper()


def normalize_message_id(value: str) -> str:
    """A Message-ID without its angle brackets, as gateways and mail clients vary on them."""
    return value.strip().strip("<>").strip()


def crm_request_id(case_id: str) -> str:
    """Our request id for a CRM or portal case."""
    return request_id_for("crm", case_id)


def email_request_id(message_id: str) -> str:
    """Our request id for an email that opens a request (with or without angle brackets)."""
    return request_id_for("email", normalize_message_id(message_id))


def looks_like_request_id(value: str) -> bool:
    """Whether ``value`` has the form of our request ids (``REQ-`` and 18 characters of a UUID)."""
    return len(value) == 22 and value.startswith("REQ-")


def event_id_for(request_id: str, what: str, *details: str) -> str:
    """The id of the event ``what`` about ``request_id``: one per logical change."""
    return stable_id("event", request_id, what, *details)
