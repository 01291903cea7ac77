"""`crs audit verify` and `crs record`: read audit's store directly and show what it proves.

They read the audit service's own database through its read API (:class:`AuditReader`), not the
topics: what an auditor is shown is what audit stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any

from services.audit.chain import (
    StoreReport,
    StoreVerification,
    describe_break,
    verify_chain_live,
)
from services.audit.reader import AuditReader
from services.audit.record import CustomerRequestRecord, assemble_record

INTACT, BROKEN, NOT_FOUND = 0, 1, 2
"""Exit codes: every chain checked is intact; one is broken; there was nothing to check (the
request is unknown). "Could not check" (the database does not answer) is the CLI's 3."""


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _short(value: str | None) -> str:
    return f"{value[:16]}…" if value else "-"


async def verify_request(reader: AuditReader, request_id: str) -> tuple[int, list[str]]:
    """Check one request's chain against its head: the exit code and the lines to print.

    Audit may be appending while we read: the global head, then the chain's head, then its
    entries, in that order (see :func:`verify_chain_live`).
    """
    settled = await reader.global_head()
    head = await reader.head_of(request_id)
    entries = await reader.entries_of(request_id)
    if not entries and head is None:
        return NOT_FOUND, [f"{request_id}: no audit entries in {reader.database_name}"]
    found = verify_chain_live(
        request_id, entries, head_before=head, settled_through=settled.sequence if settled else 0
    )
    if found is None:
        last = entries[-1]
        return INTACT, [
            f"{request_id}: {_count(len(entries), 'entry', 'entries')}, chain intact "
            f"(head #{last['sequence']} {_short(last.get('entry_hash'))})"
        ]
    return BROKEN, [f"{request_id}: BROKEN", f"  first broken entry: {describe_break(found)}"]


async def verify_store(reader: AuditReader) -> tuple[int, list[str]]:
    """Check the global chain and every request's chain in one pass over the store.

    Audit may be appending while we read, so the reads come in an order that makes the check
    exact up to a point: the global head, every request head, the global head again, then the
    entries up to that second head (see :class:`StoreVerification`).
    """
    settled = await reader.global_head()
    heads, _ = await reader.heads()
    cut = await reader.global_head()
    verification = StoreVerification(heads_before=heads, settled_through=settled.sequence if settled else 0)
    async for entry in reader.every_entry(through=cut.sequence if cut else 0):
        verification.feed(entry)
    report = verification.finish(global_head=cut)
    return (INTACT if report.intact else BROKEN), list(_store_lines(reader.database_name, report))


def _store_lines(database: str, report: StoreReport) -> Iterator[str]:
    yield (
        f"audit database {database}: {_count(report.entries, 'entry', 'entries')} in "
        f"{_count(report.chains, 'request chain', 'request chains')}"
    )
    if report.global_break is not None:
        yield f"global chain: BROKEN at {describe_break(report.global_break)}"
    elif report.global_head is not None:
        yield (
            f"global chain: intact, head #{report.global_head.sequence} {report.global_head.hash} "
            "(keep it: if a later check shows another hash for this number, history was rewritten)"
        )
    else:
        yield "global chain: empty"
    broken = len(report.request_breaks)
    yield f"request chains: {report.chains - broken} intact, {broken} broken"
    for found in report.request_breaks:
        yield f"  {describe_break(found)}"
    yield f"result: {'INTACT' if report.intact else 'BROKEN'}"


async def request_record(reader: AuditReader, request_id: str) -> CustomerRequestRecord | None:
    """The Customer Request Record of ``request_id``, with its chain checked; None if unknown."""
    settled = await reader.global_head()
    head = await reader.head_of(request_id)
    entries = await reader.entries_of(request_id)
    if not entries:
        return None
    found = verify_chain_live(
        request_id, entries, head_before=head, settled_through=settled.sequence if settled else 0
    )
    return assemble_record(request_id, entries, chain_break=None if found is None else describe_break(found))


def _customer_at_the_time(customer: dict[str, Any]) -> str:
    kyc_until = f" until {customer['kyc_expires_on']}" if customer.get("kyc_expires_on") else ""
    return (
        f"as recorded then: {customer.get('name')}, {customer.get('status')}, "
        f"KYC {customer.get('kyc_status')}{kyc_until}, credit limit {_money(customer.get('credit_limit'))} "
        f"(master data of {customer.get('updated_at')})"
    )


def _money(value: Any) -> str:
    if isinstance(value, dict) and "amount" in value:
        return f"{value['amount']} {value.get('currency', '')}".strip()
    return "-"


def _stamp(part: Any, own: Any = None) -> str:
    """``#sequence``, the time the message gives, and when audit recorded it."""
    audited = part.recorded_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"#{part.sequence} {own or '-'} (audited {audited})"


def format_record(record: CustomerRequestRecord) -> str:
    """The record as an auditor reads it: each step with its place in the chain and its times."""
    unreadable = f", {record.unreadable} not readable as JSON" if record.unreadable else ""
    chain = "chain intact" if record.chain_intact else f"chain BROKEN: {record.chain_break}"
    lines = [
        f"Customer Request Record {record.request_id}",
        f"customer: {record.customer_id or '-'}",
        f"audit: {_count(record.entries, 'entry', 'entries')}{unreadable}; {chain}",
    ]
    for received in record.received:
        lines += ["", f"received: {_stamp(received, _received_at(received.message))} on {received.topic}"]
        lines += [f"  {line}" for line in _request_lines(received.message)]
    if record.captured is not None:
        details = record.captured.details
        lines += [
            "",
            f"captured: {_stamp(record.captured, record.captured.occurred_at)}",
            f"  type={details.get('request_type') or 'unclassified'} "
            f"confidence={details.get('type_confidence')} channel={details.get('channel')} "
            f"source={details.get('source_id')}",
        ]
    for validation in record.validations:
        outcome = validation.verdict or "-"
        if validation.reason:
            outcome += f" [{validation.reason}]"
        if validation.waiting_for:
            outcome += f" waiting for {', '.join(validation.waiting_for)}"
        if validation.duplicate_of:
            outcome += f" of {validation.duplicate_of}"
        lines += [
            "",
            f"validation: {_stamp(validation, validation.occurred_at)} {outcome}",
            f"  customer={validation.customer_id or '-'} tier={validation.customer_tier or '-'}",
        ]
        if validation.customer is not None:
            lines.append(f"  {_customer_at_the_time(validation.customer)}")
        lines += [
            f"  {'pass' if check.get('passed') else 'FAIL'} {check.get('check')}: {check.get('detail')}"
            for check in validation.checks
        ]
    if record.routing is not None:
        routing = record.routing
        lines += [
            "",
            f"routing: {_stamp(routing, routing.occurred_at)}",
            f"  queue={routing.queue} priority={routing.priority} sla_due_at={routing.sla_due_at} "
            f"rule_version={routing.rule_version}",
        ]
    lines += ["", "status changes:"]
    lines += [
        f"  {_stamp(change, change.at)} {change.status}"
        + (f" [{change.reason}]" if change.reason else "")
        + (f": {change.message}" if change.message else "")
        for change in record.status_changes
    ] or ["  none"]
    lines += ["", "resolutions:"]
    lines += [_resolution_line(part) for part in record.resolutions] or ["  none"]
    lines += ["", "ERP acks:"]
    lines += [
        f"  {_stamp(part, part.message.get('posted_at'))} {part.message.get('status')} "
        f"{part.message.get('resolution_id')} erp_document_id={part.message.get('erp_document_id') or '-'}"
        + (f" error: {part.message['error']}" if part.message.get("error") else "")
        for part in record.erp_acks
    ] or ["  none"]
    if record.replies:
        lines += ["", "email replies added:"]
        lines += [
            f"  {_stamp(part, part.message.get('received_at'))} from {part.message.get('sender')}: "
            f"{part.message.get('subject')}"
            + (
                f" ({len(part.message['attachments'])} attachments)"
                if part.message.get("attachments")
                else ""
            )
            for part in record.replies
        ]
    if record.approvals:
        lines += ["", "approvals:"]
        lines += [
            f"  {_stamp(part, part.message.get('decided_at'))} {part.message.get('decision')} "
            f"by {part.message.get('approver')} ({part.message.get('role')})"
            for part in record.approvals
        ]
    return "\n".join(lines)


def _received_at(message: dict[str, Any]) -> Any:
    return message.get("submitted_at") or message.get("received_at")


def _request_lines(message: dict[str, Any]) -> Iterator[str]:
    yield f"{message.get('type') or 'type not given'}: {message.get('subject') or '-'}"
    facts = [
        f"{name} {message[name]}"
        for name in ("case_id", "message_id", "channel", "from", "customer_id", "contract_id", "priority")
        if message.get(name)
    ]
    facts += [
        f"{name} {', '.join(map(str, message[name]))}"
        for name in ("invoice_ids", "payment_ids")
        if isinstance(message.get(name), list) and message[name]
    ]
    facts += [
        f"{name} {_money(message[name])}"
        for name in ("disputed_amount", "expected_amount", "requested_credit_limit")
        if message.get(name)
    ]
    yield "; ".join(facts)
    text = message.get("description") or message.get("body_text")
    if text:
        yield f"text: {text}"


def _resolution_line(part: Any) -> str:
    message = part.message
    change = (
        f"; {_money(message.get('original_amount'))} -> {_money(message.get('corrected_amount'))}"
        if message.get("original_amount") or message.get("corrected_amount")
        else ""
    )
    return (
        f"  {_stamp(part, message.get('created_at'))} {message.get('kind')} "
        f"{_money(message.get('amount'))} on {message.get('invoice_id') or message.get('payment_id') or '-'}"
        f" ({message.get('resolution_id')}{change}, reason {message.get('reason_code')})"
    )
