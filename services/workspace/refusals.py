"""A person's action that the service owning it refused, as the person sees it on the request.

Routing, validation and resolution dead-letter an action they cannot carry out (a closing of a
request resolution never saw, a decision on an invoice of another customer) on
``requests.actions.v1.dlq``, the reason in its headers. The workspace reads that topic so the
person who acted learns why nothing happened, instead of waiting on "resolution carries it out".

Every dead letter of the topic is read here, and none is refused: a record that is not a readable
action of a request is skipped (the operator's tools show it), so this reader never has a dead
letter of its own to send.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_TEXT_LIMIT = 1_000
_ACTION_FIELDS = ("event_id", "request_id", "event_type", "actor", "actor_role", "occurred_at")


def refusal_of(value: bytes, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """The refusal a dead-lettered action stands for, or None if it is not a readable action."""
    try:
        action = json.loads(value)
    except Exception:  # noqa: BLE001 - unreadable (cut, not JSON, nested too deep): nobody to tell
        return None
    if not isinstance(action, dict):
        return None
    fields = {name: action.get(name) for name in _ACTION_FIELDS}
    if not all(isinstance(value, str) and value for value in fields.values()):
        return None
    refused_by = _header(headers, "x-failed-service") or "unknown"
    return {
        "_id": f"{fields['event_id']}:{refused_by}",
        **{name: _cut(str(value)) for name, value in fields.items()},
        "refused_by": refused_by,
        "reason": _header(headers, "x-error-reason") or "refused",
        "detail": _header(headers, "x-error"),
        "refused_at": _header(headers, "x-failed-at") or fields["occurred_at"],
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return _cut(value) if value else None


def _cut(text: str) -> str:
    return text[:_TEXT_LIMIT]
