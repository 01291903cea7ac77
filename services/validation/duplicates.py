"""Duplicate claims: "an open request of this customer, type and document", made atomic. Pure.

A validated request that is passed on *claims* what a repeat of it would share with it under the
duplicate rule (:class:`services.validation.domain.DuplicateRule`): one claim per combination of
the customer, the type (if the rule compares types) and one document of each kind the rule
compares (every invoice named, every payment named). Claims are documents with the claim as their
unique ``_id``, written in the same transaction as the open request and released in the one that
closes it. A later request that finds one of its claims held, within the rule's window, by another
open request is that request's duplicate.

Why not just look for matching open requests, as before: two transactions (two replicas, or the
hold re-check and the subscriber) could each find none and each open its own, since MongoDB's
snapshot isolation lets two transactions that write *different* documents both commit. Two that
write the *same* ``_id`` cannot: the second conflicts (or hits the unique key), its delivery is
retried, and the retry finds the claim.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.validation.domain import DuplicateCriterion
from shared.events import RequestDetails


@dataclass(frozen=True)
class Claim:
    """A claim as stored: who holds it, since when."""

    key: str
    request_id: str
    opened_at: datetime


def rule_name(criteria: Sequence[DuplicateCriterion]) -> str:
    """How the rule that made a request's claims is recorded (so a changed rule can be noticed)."""
    return "+".join(sorted(criteria)) or "customer"


def claim_keys(
    customer_id: str,
    *,
    request_type: str | None,
    invoice_ids: Iterable[str],
    payment_ids: Iterable[str],
    criteria: Sequence[DuplicateCriterion],
) -> tuple[str, ...]:
    """Every claim a request makes under ``criteria`` (none: it can never be repeated).

    As the rule says (:class:`services.validation.domain.DuplicateRule`): a rule that compares types
    claims nothing for a request without a type, and one that compares a kind of document claims
    nothing for a request that names none. The key is JSON, so no invoice number can forge another
    key.
    """
    dimensions: list[list[tuple[str, str]]] = []
    if "type" in criteria:
        if not request_type:
            return ()
        dimensions.append([("type", request_type)])
    for criterion, documents in (("invoice", invoice_ids), ("payment", payment_ids)):
        if criterion in criteria:
            named = sorted(set(documents))
            if not named:
                return ()
            dimensions.append([(criterion, document) for document in named])
    return tuple(
        json.dumps([customer_id, dict(combination)], sort_keys=True, separators=(",", ":"))
        for combination in itertools.product(*dimensions)
    )


def claim_keys_of(
    customer_id: str, details: RequestDetails, criteria: Sequence[DuplicateCriterion]
) -> tuple[str, ...]:
    """:func:`claim_keys` of a request as validation received it."""
    return claim_keys(
        customer_id,
        request_type=details.request_type.value if details.request_type else None,
        invoice_ids=details.invoice_ids,
        payment_ids=details.payment_ids,
        criteria=criteria,
    )


def earliest_holder(claims: Iterable[Claim], request_id: str, *, since: datetime) -> Claim | None:
    """The claim, held by another request opened since ``since``, of the earliest such request.

    A claim older than the window counts for nothing: the new request takes it over.
    """
    held = [claim for claim in claims if claim.request_id != request_id and claim.opened_at >= since]
    return min(held, key=lambda claim: claim.opened_at, default=None)
