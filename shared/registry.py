"""The one table of the system's services and topics.

Every other list is built from this one or checked against it: the topic names and groups of
:mod:`shared.topics`, the topics created at start (the stack, every service, ``crs topics
create``), the local stack's services and health ports (:mod:`crs.stack`,
:mod:`shared.settings`), the AsyncAPI document (:mod:`crs.asyncapi`); ``docker-compose.yml``,
``deploy/kubernetes`` and ``deploy/prometheus`` are checked against it by
``tests/unit/test_registry.py``, which also checks each service's subscriptions against what its
entry says it consumes. To add a topic or a service, start here (``docs/how-to-add-a-service.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from pydantic import BaseModel

from shared.actions import WorkspaceActionMessage
from shared.contract import (
    ApprovalDecision,
    CrmRequest,
    Customer,
    CustomerContract,
    EmailRequest,
    ErpAck,
    ErpResolution,
    Invoice,
    Payment,
    RequestStatusChanged,
)
from shared.events import (
    RequestCaptured,
    RequestRouted,
    RequestSetAside,
    RequestUpdateMessage,
    RequestValidated,
)
from shared.resolution_events import ResolutionEventMessage


class Group(StrEnum):
    """What a topic carries."""

    REQUEST = "request"
    """The life of a request: what audit records and ``crs watch`` tails."""
    REFERENCE = "reference"
    """Master data and ERP documents: the latest record per key is current."""


@dataclass(frozen=True)
class Topic:
    """One topic: its name, key, who writes it, what it carries and whether it has a ``.dlq`` twin.

    ``owner`` is the service that publishes it, or the outside system that does (``crm``,
    ``email gateway``, ``erp``, ...) for an inbound topic of the contract. ``contract`` topics are
    fixed by ``../shared/CONTRACT.md``; the others are ours to change. ``dead_letter``: a
    consumer that cannot process one of its records sends it to ``<name>.dlq``.
    """

    name: str
    key: str
    owner: str
    contract: bool
    model: type[BaseModel]
    description: str
    group: Group
    dead_letter: bool = True


@dataclass(frozen=True)
class Service:
    """One service: where its code is, where it answers locally, what it keeps, reads and writes."""

    name: str
    health_port: int
    """Its health and metrics port on the local stack (8080 in containers)."""
    consumes: tuple[str, ...]
    publishes: tuple[str, ...]
    user_directory: bool = False
    """Whether it reads the user directory (approvers and their roles): its pod mounts that Secret."""
    view_only: bool = False
    """Whether what it consumes only feeds a view (audit's trail, the console): no service waits
    for it to consume anything, so it may fall behind a burst and catch up after. The local stack
    runs it, and a database server that only such services use, at a lower CPU priority
    (:attr:`crs.stack.StackConfig.view_niceness`)."""

    @property
    def module(self) -> str:
        """The module that runs it: ``python -m services.<name>``."""
        return f"services.{self.name}"

    @property
    def database(self) -> str:
        """Its own MongoDB database (``CRS_<NAME>_DATABASE`` overrides it)."""
        return f"crs_{self.name}"


# --------------------------------------------------------------------------------------------
# Topics

CRM_REQUESTS: Final = Topic(
    "crm.requests.v1", "case_id", "crm gateway", True, CrmRequest,
    "Requests from the CRM gateway and the portal.", Group.REQUEST,
)  # fmt: skip
EMAIL_REQUESTS: Final = Topic(
    "email.requests.v1", "message_id", "email gateway", True, EmailRequest,
    "One message per email, MIME decoded.", Group.REQUEST,
)  # fmt: skip
CUSTOMERS: Final = Topic(
    "customers.master.v1", "customer_id", "master data", True, Customer,
    "Customer master; latest per key is current.", Group.REFERENCE,
)  # fmt: skip
INVOICES: Final = Topic(
    "erp.invoices.v1", "invoice_id", "erp", True, Invoice, "ERP invoices.", Group.REFERENCE
)
PAYMENTS: Final = Topic(
    "erp.payments.v1", "payment_id", "erp", True, Payment, "ERP payments.", Group.REFERENCE
)
CONTRACTS: Final = Topic(
    "erp.contracts.v1", "contract_id", "erp", True, CustomerContract,
    "Customer contracts with prices.", Group.REFERENCE,
)  # fmt: skip
APPROVALS: Final = Topic(
    "requests.approvals.v1", "request_id", "approval tools, workspace", True, ApprovalDecision,
    "Approval decisions.", Group.REQUEST,
)  # fmt: skip
ERP_ACKS: Final = Topic(
    "erp.acks.v1", "request_id", "erp", True, ErpAck, "The ERP's answer to a resolution.", Group.REQUEST
)
ERP_RESOLUTIONS: Final = Topic(
    "erp.resolutions.v1", "request_id", "resolution", True, ErpResolution,
    "What the ERP must post.", Group.REQUEST,
)  # fmt: skip
REQUEST_STATUS: Final = Topic(
    "requests.status.v1", "request_id", "intake, validation, routing, resolution", True,
    RequestStatusChanged, "Every status change.", Group.REQUEST,
)  # fmt: skip
REQUEST_CAPTURED: Final = Topic(
    "requests.captured.v1", "request_id", "intake", False, RequestCaptured,
    "Internal: intake to validation.", Group.REQUEST,
)  # fmt: skip
REQUEST_VALIDATED: Final = Topic(
    "requests.validated.v1", "request_id", "validation", False, RequestValidated,
    "Internal: validation to routing.", Group.REQUEST,
)  # fmt: skip
REQUEST_SET_ASIDE: Final = Topic(
    "requests.set-aside.v1", "request_id", "validation", False, RequestSetAside,
    "Internal: validation's holds, rejections and duplicates, with their checks (audit reads it).",
    Group.REQUEST, dead_letter=False,
)  # fmt: skip
REQUEST_ROUTED: Final = Topic(
    "requests.routed.v1", "request_id", "routing", False, RequestRouted,
    "Internal: routing to resolution.", Group.REQUEST,
)  # fmt: skip
REQUEST_UPDATED: Final = Topic(
    "requests.updated.v1", "request_id", "intake", False, RequestUpdateMessage,
    "Internal: what is added to an existing request: an email reply in its thread (with what it "
    "says), or a CRM case published again with other content (the fields that changed, a "
    "withdrawal). Validation resumes or closes the request; resolution closes a withdrawn one it "
    "holds; audit and the workspace record it.",
    Group.REQUEST,
)  # fmt: skip
REQUEST_ACTIONS: Final = Topic(
    "requests.actions.v1", "request_id", "workspace", False, WorkspaceActionMessage,
    "Internal: what people did in the workspace (assignments, notes, and decisions the owning "
    "service carries out), under their directory id and role.",
    Group.REQUEST,
)  # fmt: skip
REQUEST_RESOLUTION: Final = Topic(
    "requests.resolution.v1", "request_id", "resolution", False, ResolutionEventMessage,
    "Internal: what resolution tells the people who work a request, as data (candidate payments, "
    "approvals asked for and each decision as counted).",
    Group.REQUEST,
)  # fmt: skip
# Audit, the only reader of set-aside, records any text whatever it holds and never dead-letters:
# it has no .dlq twin.

TOPICS: Final[tuple[Topic, ...]] = (
    # The life of a request, in the order it goes (audit and `crs watch` read them in this order).
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
    REQUEST_RESOLUTION,
    # Reference data.
    CUSTOMERS,
    INVOICES,
    PAYMENTS,
    CONTRACTS,
)
"""Every topic, contract and internal; each ``dead_letter`` one also has a ``<name>.dlq``."""

_REFERENCE: Final = tuple(topic.name for topic in TOPICS if topic.group is Group.REFERENCE)

# --------------------------------------------------------------------------------------------
# Services, in start order (the local stack starts them in this order and stops them in reverse)

SERVICES: Final[tuple[Service, ...]] = (
    Service(
        "intake",
        8081,
        consumes=(CRM_REQUESTS.name, EMAIL_REQUESTS.name, REQUEST_STATUS.name),
        publishes=(REQUEST_CAPTURED.name, REQUEST_UPDATED.name, REQUEST_STATUS.name),
    ),
    Service(
        "validation",
        8082,
        consumes=(
            REQUEST_CAPTURED.name,
            REQUEST_UPDATED.name,
            REQUEST_STATUS.name,
            REQUEST_ACTIONS.name,
            *_REFERENCE,
        ),
        publishes=(REQUEST_VALIDATED.name, REQUEST_SET_ASIDE.name, REQUEST_STATUS.name),
    ),
    Service(
        "routing",
        8083,
        consumes=(REQUEST_VALIDATED.name, REQUEST_STATUS.name, REQUEST_ACTIONS.name),
        publishes=(REQUEST_ROUTED.name, REQUEST_STATUS.name),
    ),
    Service(
        "resolution",
        8084,
        consumes=(
            REQUEST_ROUTED.name,
            REQUEST_UPDATED.name,
            APPROVALS.name,
            ERP_ACKS.name,
            REQUEST_ACTIONS.name,
            *_REFERENCE,
        ),
        publishes=(ERP_RESOLUTIONS.name, REQUEST_STATUS.name, REQUEST_RESOLUTION.name),
        user_directory=True,
    ),
    Service(
        "audit",
        8085,
        # The life of every request, in this order (`crs watch` tails the same list).
        consumes=tuple(topic.name for topic in TOPICS if topic.group is Group.REQUEST),
        publishes=(),
        view_only=True,
    ),
    Service(
        "workspace",
        8080,
        # Its view: the life of every request as the other services tell it, and its own actions.
        consumes=(
            EMAIL_REQUESTS.name,
            REQUEST_CAPTURED.name,
            REQUEST_VALIDATED.name,
            REQUEST_SET_ASIDE.name,
            REQUEST_ROUTED.name,
            REQUEST_UPDATED.name,
            REQUEST_STATUS.name,
            ERP_RESOLUTIONS.name,
            ERP_ACKS.name,
            APPROVALS.name,
            REQUEST_ACTIONS.name,
            REQUEST_RESOLUTION.name,
            # The actions their owners refused (dead letters): shown to the person who acted.
            f"{REQUEST_ACTIONS.name}.dlq",
        ),
        publishes=(REQUEST_ACTIONS.name, APPROVALS.name),
        user_directory=True,
        view_only=True,
    ),
)
"""Every service of the system: a folder ``services/<name>/``, run as ``python -m services.<name>``."""


def topic(name: str) -> Topic:
    """The entry of the topic called ``name``; ``KeyError`` if the registry has none."""
    for entry in TOPICS:
        if entry.name == name:
            return entry
    raise KeyError(name)


def service(name: str) -> Service:
    """The entry of the service called ``name``; ``KeyError`` if the registry has none."""
    for entry in SERVICES:
        if entry.name == name:
            return entry
    raise KeyError(name)


def consumers_of(name: str) -> tuple[str, ...]:
    """The services that consume the topic ``name``."""
    return tuple(entry.name for entry in SERVICES if name in entry.consumes)
