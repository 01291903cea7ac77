"""What the lifecycles of the services have in common: the events a transition causes, and a refusal.

Each service that keeps a request's life (validation, resolution) models it as a typed object:
states as an enum, transitions as methods that change the object and return the events they
cause (statuses, internal events, postings for the ERP). A transition the state does not allow
raises :class:`TransitionRefused`; the runtime turns it into a dead letter with its reason, since
the message that asked for it will never succeed however often it is tried again.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.contract import ErpResolution, RequestStatusChanged
from shared.events import InternalEvent

Effect = RequestStatusChanged | InternalEvent | ErpResolution
"""What a transition causes: a status for the customer, an event for our services, a posting."""

Effects = Sequence[Effect]


class TransitionRefused(Exception):
    """A message asks a request for something its state does not allow (or names no request).

    ``reason`` is the machine reason (the dead letter's ``x-error-reason``), ``detail`` a sentence
    an operator can read.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
