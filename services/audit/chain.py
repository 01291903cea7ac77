"""Audit's hash chains: how entries are sealed, and how a chain is checked. No database here.

Every entry is sealed into two chains at once:

- its request's chain: ``sequence`` (1, 2, 3, ... per request) and ``previous_hash``, the
  ``entry_hash`` of the same request's previous entry;
- the global chain of every entry audit ever recorded: ``global_sequence`` and
  ``global_previous_hash``.

``entry_hash`` is the SHA-256 of the canonical serialisation of the entry's content fields, its
two sequence numbers and both previous hashes. Changing any of them in one entry breaks that
entry's own hash; recomputing it breaks the next entry's link; deleting an entry leaves a gap in
the numbers (or, for the last one, a chain shorter than its head says); reordering leaves the
numbers out of order. What it does not stop is someone who rewrites a whole chain *and* its head:
for that, an auditor keeps the global head (``crs audit verify --all`` prints it) outside the
database and compares it later.

Canonical serialisation: a JSON object with sorted keys, no whitespace, ASCII only, datetimes as
RFC 3339 UTC with microseconds (``2026-11-23T15:17:00.123000Z``), and no floats (a float has no
single textual form, so it could not be hashed the same way twice; none of our fields is one).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

UNATTRIBUTED = "__unattributed__"
"""The chain of records that name no request (they are not JSON, or carry no request id)."""

GLOBAL_CHAIN = "global"
"""How reports name the global chain."""

CONTENT_FIELDS = (
    "request_id",
    "event_type",
    "status",
    "customer_id",
    "topic",
    "partition",
    "offset",
    "key",
    "published_at",
    "recorded_at",
    "text",
)
"""What audit recorded about a record: every one is covered by the entry's hash."""

LINK_FIELDS = ("sequence", "previous_hash", "global_sequence", "global_previous_hash")
HASHED_FIELDS = CONTENT_FIELDS + LINK_FIELDS

FINGERPRINT_FIELD = "record_fingerprint"
"""A field :func:`seal` adds to every entry: :func:`record_fingerprint` of its hashed content.

Not hashed itself (adding it to ``HASHED_FIELDS`` would change the hash of every entry sealed
before it existed), but derived only from hashed fields, so anyone can recompute it.
"""


def record_fingerprint(*, published_at: datetime | None, key: str | None, text: str) -> str:
    """What tells two records at the same topic, partition and offset apart.

    A topic deleted and created again (or moved to another cluster) numbers its records from 0
    again, so the position alone no longer names one record. A record redelivered keeps its
    timestamp, key and bytes; a new record at a reused offset has at least another timestamp.
    """
    fields = {
        "published_at": at_storage_precision(published_at) if published_at is not None else None,
        "key": key,
        "text": text,
    }
    return hashlib.sha256(canonical_json(fields)).hexdigest()[:32]


def chain_of(entry: Mapping[str, Any]) -> str:
    """The per-request chain an entry belongs to."""
    return str(entry.get("request_id") or UNATTRIBUTED)


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # A naive datetime from the database is UTC (PyMongo without tz_aware returns them so).
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, float):
        raise TypeError("floats have no canonical form; audit entries carry none")
    if value is None or isinstance(value, str | int):
        return value
    raise TypeError(f"cannot hash a {type(value).__name__}")


def canonical_json(fields: Mapping[str, Any]) -> bytes:
    """The canonical serialisation of ``fields`` (see the module docstring)."""
    return json.dumps(
        {name: _canonical_value(value) for name, value in fields.items()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    ).encode("ascii")


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The hash an entry must carry: SHA-256 (hex) over its hashed fields, absent ones as null."""
    return hashlib.sha256(canonical_json({name: entry.get(name) for name in HASHED_FIELDS})).hexdigest()


def at_storage_precision(value: datetime) -> datetime:
    """``value`` as MongoDB will give it back: UTC, whole milliseconds.

    BSON dates keep milliseconds, so an entry is hashed exactly as it will be read back.
    """
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(microsecond=aware.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Head:
    """The end of a chain: its last sequence number and that entry's hash."""

    sequence: int = 0
    hash: str | None = None


@dataclass(frozen=True)
class Sealed:
    """Entries ready to insert, and the chain heads after them."""

    entries: list[dict[str, Any]]
    heads: dict[str, Head]
    global_head: Head


def seal(entries: Iterable[Mapping[str, Any]], *, heads: Mapping[str, Head], global_head: Head) -> Sealed:
    """Number, link and hash ``entries`` (in the order given) after the chains' current heads.

    ``heads`` holds the head of every request chain that already has entries; the returned
    ``heads`` holds the new head of every chain these entries touched.
    """
    touched: dict[str, Head] = {}
    sealed: list[dict[str, Any]] = []
    last_global = global_head
    for entry in entries:
        # A field the hash does not cover could be changed unnoticed: adding one to audit's
        # entries means adding it to CONTENT_FIELDS (and changes every hash from then on).
        uncovered = set(entry) - set(CONTENT_FIELDS)
        if uncovered:
            raise ValueError(f"fields no hash would cover: {sorted(uncovered)}")
        chain = chain_of(entry)
        previous = touched.get(chain) or heads.get(chain) or Head()
        content = {
            name: at_storage_precision(value) if isinstance(value, datetime) else value
            for name, value in entry.items()
        }
        sequence, global_sequence = previous.sequence + 1, last_global.sequence + 1
        linked: dict[str, Any] = {
            **content,
            "sequence": sequence,
            "previous_hash": previous.hash,
            "global_sequence": global_sequence,
            "global_previous_hash": last_global.hash,
        }
        hashed = linked["entry_hash"] = entry_hash(linked)
        published, key = content.get("published_at"), content.get("key")
        linked[FINGERPRINT_FIELD] = record_fingerprint(
            published_at=published if isinstance(published, datetime) else None,
            key=key if isinstance(key, str) else None,
            text=str(content.get("text", "")),
        )
        sealed.append(linked)
        touched[chain] = Head(sequence, hashed)
        last_global = Head(global_sequence, hashed)
    return Sealed(entries=sealed, heads=touched, global_head=last_global)


class BreakKind(StrEnum):
    """What is wrong where a chain breaks."""

    CONTENT_CHANGED = "content changed"
    PREVIOUS_HASH_MISMATCH = "previous hash mismatch"
    SEQUENCE_GAP = "gap in the sequence"
    OUT_OF_ORDER = "sequence out of order"
    NOT_SEALED = "not sealed"
    HEAD_MISMATCH = "head mismatch"


@dataclass(frozen=True)
class ChainBreak:
    """The first place a chain is broken.

    ``sequence`` is the number the chain expected there; ``entry`` is the entry found in its
    place, or None when the chain ends early (entries deleted at its end).
    """

    chain: str
    sequence: int
    kind: BreakKind
    detail: str
    entry: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ChainKind:
    """Which fields number and link a chain."""

    sequence_field: str
    previous_field: str


PER_REQUEST = ChainKind("sequence", "previous_hash")
GLOBAL = ChainKind("global_sequence", "global_previous_hash")


def _short(value: object) -> str:
    return f"{value[:12]}…" if isinstance(value, str) and len(value) > 12 else str(value)


def _span(first: int, last: int) -> str:
    return f"#{first}" if first == last else f"#{first}..#{last}"


@dataclass
class ChainWalker:
    """Walks one chain entry by entry (in the order it claims) and remembers the first break."""

    chain: str
    kind: ChainKind
    count: int = 0
    last_sequence: int = 0
    last_hash: str | None = None
    broken: ChainBreak | None = None
    # Checking a store that is being written (see StoreVerification.live): the head as read before
    # the entries, the hash the chain has at that head's number, and the entries past it.
    watch: Head | None = None
    watched_hash: str | None = None
    first_global: int | None = None
    oldest_past_watch: Mapping[str, Any] | None = None

    def feed(self, entry: Mapping[str, Any]) -> None:
        """The next entry of the chain; nothing is checked after the first break."""
        if self.broken is not None:
            return
        self.count += 1
        expected = self.last_sequence + 1
        found_sequence = entry.get(self.kind.sequence_field)
        stored_hash = entry.get("entry_hash")
        problem = self._problem(entry, expected, found_sequence, stored_hash)
        if problem is not None:
            kind, detail = problem
            self.broken = ChainBreak(self.chain, expected, kind, detail, entry)
            return
        self.last_sequence = expected
        self.last_hash = stored_hash
        if self.first_global is None:
            self.first_global = entry.get("global_sequence")
        if self.watch is not None and expected == self.watch.sequence:
            self.watched_hash = stored_hash
        elif (self.watch is None or expected > self.watch.sequence) and self.oldest_past_watch is None:
            self.oldest_past_watch = entry

    def _problem(
        self, entry: Mapping[str, Any], expected: int, found_sequence: Any, stored_hash: Any
    ) -> tuple[BreakKind, str] | None:
        if not stored_hash:
            return BreakKind.NOT_SEALED, "the entry has no hash (written before the chain, or it was removed)"
        try:
            computed = entry_hash(entry)
        except TypeError as error:
            return BreakKind.CONTENT_CHANGED, f"a field holds what audit never stores: {error}"
        if computed != stored_hash:
            return (
                BreakKind.CONTENT_CHANGED,
                f"its content does not match its hash (stored {_short(stored_hash)}, "
                f"computed {_short(computed)})",
            )
        if not isinstance(found_sequence, int) or found_sequence < expected:
            return (
                BreakKind.OUT_OF_ORDER,
                f"expected #{expected}, found #{found_sequence} (a repeated or reordered entry)",
            )
        if found_sequence > expected:
            missing = _span(expected, found_sequence - 1)
            return BreakKind.SEQUENCE_GAP, f"expected #{expected}, found #{found_sequence}: {missing} missing"
        previous = entry.get(self.kind.previous_field)
        if previous != self.last_hash:
            return (
                BreakKind.PREVIOUS_HASH_MISMATCH,
                f"it links to {_short(previous)} but the entry before it is {_short(self.last_hash)}",
            )
        return None

    def finish(self, head: Head | None) -> ChainBreak | None:
        """The first break, comparing the chain's end with its recorded head."""
        if self.broken is not None or (head is None and self.count == 0):
            return self.broken
        end = self.last_sequence + 1
        if head is None:
            return ChainBreak(self.chain, end, BreakKind.HEAD_MISMATCH, "the chain has no recorded head")
        if head.sequence > self.last_sequence:
            missing = _span(end, head.sequence)
            return ChainBreak(
                self.chain,
                end,
                BreakKind.SEQUENCE_GAP,
                f"the chain ends at #{self.last_sequence} but its head says #{head.sequence}: "
                f"{missing} missing",
            )
        if head.sequence < self.last_sequence or head.hash != self.last_hash:
            return ChainBreak(
                self.chain,
                head.sequence,
                BreakKind.HEAD_MISMATCH,
                f"the head records #{head.sequence} {_short(head.hash)}, the chain ends at "
                f"#{self.last_sequence} {_short(self.last_hash)}",
            )
        return None

    def finish_live(self, *, settled_through: int) -> ChainBreak | None:
        """The first break of a chain read while audit may be appending to it.

        ``watch`` is the head as read before the entries, when every entry up to global
        ``settled_through`` was already committed: the chain must reach the head and have the
        head's hash there, and whatever follows the head must be newer than ``settled_through``
        (added while reading), not an older entry the head never covered.
        """
        if self.broken is not None:
            return self.broken
        head = self.watch
        if head is not None and head.sequence > self.last_sequence:
            end = self.last_sequence + 1
            return ChainBreak(
                self.chain,
                end,
                BreakKind.SEQUENCE_GAP,
                f"the chain ends at #{self.last_sequence} but its head says #{head.sequence}: "
                f"{_span(end, head.sequence)} missing",
            )
        if head is not None and head.hash != self.watched_hash:
            return ChainBreak(
                self.chain,
                head.sequence,
                BreakKind.HEAD_MISMATCH,
                f"the head records #{head.sequence} {_short(head.hash)}, the chain has "
                f"{_short(self.watched_hash)} there",
            )
        past = self.oldest_past_watch
        if past is not None and _global_number(past) <= settled_through:
            return ChainBreak(
                self.chain,
                int(past.get(self.kind.sequence_field) or 0),
                BreakKind.HEAD_MISMATCH,
                f"{'no head covers' if head is None else f'the head (#{head.sequence}) does not cover'} "
                f"this entry, though it is older than global #{settled_through}, which the head was "
                "read after",
                past,
            )
        return None


def _global_number(entry: Mapping[str, Any]) -> int:
    number = entry.get("global_sequence")
    return number if isinstance(number, int) else 0


def verify_chain(
    chain: str,
    entries: Iterable[Mapping[str, Any]],
    *,
    kind: ChainKind = PER_REQUEST,
    head: Head | None = None,
) -> ChainBreak | None:
    """The first break of one chain whose entries are given in the chain's order, or None."""
    walker = ChainWalker(chain, kind)
    for entry in entries:
        walker.feed(entry)
    return walker.finish(head)


def verify_chain_live(
    chain: str, entries: Iterable[Mapping[str, Any]], *, head_before: Head | None, settled_through: int
) -> ChainBreak | None:
    """:func:`verify_chain` for a request chain read while audit may append to it.

    Read the global head first (its number is ``settled_through``), then the chain's head
    (``head_before``), then its entries: see :meth:`ChainWalker.finish_live`.
    """
    walker = ChainWalker(chain, PER_REQUEST, watch=head_before)
    for entry in entries:
        walker.feed(entry)
    return walker.finish_live(settled_through=settled_through)


@dataclass(frozen=True)
class StoreReport:
    """The result of checking every chain of an audit store."""

    entries: int
    chains: int
    global_break: ChainBreak | None
    request_breaks: list[ChainBreak]
    global_head: Head | None

    @property
    def intact(self) -> bool:
        return self.global_break is None and not self.request_breaks


@dataclass
class StoreVerification:
    """Checks the global chain and every request chain in one pass over the store.

    Entries are fed in global order; each also goes to its request's chain, where (in an intact
    store) it comes in sequence order too, because a batch numbers both in the same order. Memory
    is one small state per request, not the entries.

    The store may be written to while it is read. Read, in this order: the global head (its
    number is ``settled_through``), every request head (``heads_before``), the global head again
    (its number is where to stop), then the entries up to that number. Every entry up to
    ``settled_through`` was committed before the request heads were read, so the heads cover
    them; entries past a head were added while reading. For a store at rest, ``settled_through``
    is simply the global head's number.
    """

    heads_before: Mapping[str, Head]
    settled_through: int
    global_walker: ChainWalker = field(default_factory=lambda: ChainWalker(GLOBAL_CHAIN, GLOBAL))
    walkers: dict[str, ChainWalker] = field(default_factory=dict)
    entries: int = 0

    def feed(self, entry: Mapping[str, Any]) -> None:
        self.entries += 1
        self.global_walker.feed(entry)
        chain = chain_of(entry)
        walker = self.walkers.get(chain)
        if walker is None:
            walker = self.walkers[chain] = ChainWalker(chain, PER_REQUEST, watch=self.heads_before.get(chain))
        walker.feed(entry)

    def finish(self, *, global_head: Head | None) -> StoreReport:
        """The report; ``global_head`` is where the entries were cut (a head without entries too)."""
        for chain, head in self.heads_before.items():
            if chain not in self.walkers:
                self.walkers[chain] = ChainWalker(chain, PER_REQUEST, watch=head)
        breaks = [
            found
            for chain, walker in sorted(self.walkers.items())
            if (found := walker.finish_live(settled_through=self.settled_through)) is not None
        ]
        return StoreReport(
            entries=self.entries,
            chains=len(self.walkers),
            global_break=self.global_walker.finish(global_head),
            request_breaks=breaks,
            global_head=global_head,
        )


def describe_break(found: ChainBreak) -> str:
    """One readable line naming the broken entry (or the missing one) and what is wrong."""
    chain = "global chain" if found.chain == GLOBAL_CHAIN else found.chain
    if found.entry is None:
        where = "missing"
    elif found.kind is BreakKind.SEQUENCE_GAP:
        where = f"missing; next is {_origin(found.entry)}"
    else:
        where = _origin(found.entry)
    return f"{chain} #{found.sequence} ({where}): {found.kind}: {found.detail}"


def _origin(entry: Mapping[str, Any]) -> str:
    parts = [
        f"request {entry.get('request_id') or '-'} #{entry.get('sequence')}",
        f"global #{entry.get('global_sequence')}",
        f"{entry.get('topic')} partition {entry.get('partition')} offset {entry.get('offset')}",
    ]
    return ", ".join(parts)


__all__: Sequence[str] = (
    "GLOBAL",
    "PER_REQUEST",
    "BreakKind",
    "ChainBreak",
    "Head",
    "StoreReport",
    "StoreVerification",
    "canonical_json",
    "entry_hash",
    "seal",
    "verify_chain",
    "verify_chain_live",
)
