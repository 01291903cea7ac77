"""Audit's store: entries only ever added, each sealed into its request's chain and the global one.

Beside the entries, each request chain's head (its last number and hash) is kept durably in
``request_heads``, written with the entries in the batch's transaction (one bulk write per batch,
whatever its size): an entry deleted at the end of a chain leaves the chain shorter than its head
says, which checking that one request finds (the global chain would find it only when every entry
is read).

The chains themselves (numbering, links, hashes, checking) are :mod:`services.audit.chain`; this
module only reads and writes them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any
from weakref import WeakKeyDictionary

import structlog
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.audit.chain import FINGERPRINT_FIELD, UNATTRIBUTED, Head, Sealed, chain_of, entry_hash, seal
from shared.delivery import LedgerTransaction
from shared.mongo import Document, find_in

GLOBAL_HEAD_ID = 0
"""The ``_id`` of the global chain's head among the request heads of earlier releases (the
``sequences`` collection, no longer written: heads are the chains' last entries now)."""

CACHED_CHAINS = 20_000
"""Request chain heads kept in memory (the most recently used); an older one is read again."""

_POSITION_ONLY_INDEX = "topic_1_partition_1_offset_1"
_POSITION_INDEX = f"topic_1_partition_1_offset_1_{FINGERPRINT_FIELD}_1"

log = structlog.get_logger(__name__)


class AuditStore:
    """Audit's entries, only ever inserted, each under the identity of the record it holds.

    The heads audit appends after are kept in memory: the global one (read at start, and checked:
    its hash must be that of its content), and the most recently used request chains' (a chain not
    in memory is read from its entries). So a batch costs a read of which of its records are
    recorded already, a read of the heads not in memory (none when every chain is known), one
    insert, and one write of the heads it leaves (``request_heads``: what a chain is checked
    against).
    """

    def __init__(self, database: AsyncDatabase[Document], *, cached_chains: int = CACHED_CHAINS) -> None:
        self._entries = database.entries
        self._request_heads = database.request_heads
        self._legacy_heads = database.sequences
        self._legacy_keys = database.processed_messages
        self._cached_chains = cached_chains
        self._chains: OrderedDict[str, Head] = OrderedDict()
        self._global: Head | None = None  # None: not known, read it before appending
        self._legacy_keys_left: bool | None = None
        self._pending: WeakKeyDictionary[LedgerTransaction, list[tuple[str, dict[str, Any]]]] = (
            WeakKeyDictionary()
        )

    async def ensure_indexes(self) -> None:
        await self._entries.create_index([("request_id", ASCENDING), ("sequence", ASCENDING)])
        # One entry per record: its _id is the record's identity (its position and fingerprint: a
        # topic created again numbers from 0 again). Entries of earlier releases have an ObjectId
        # instead, so a store that has them keeps a unique index on position and fingerprint as
        # well. A store without them does not: every index costs the local database server a
        # write and a uniqueness check per entry, and this one would only repeat the _id's.
        # (Stores from before also had a unique index on the position alone, which would refuse
        # a topic created again: it goes.)
        existing = await self._entries.index_information()
        if _POSITION_ONLY_INDEX in existing:
            await self._entries.drop_index(_POSITION_ONLY_INDEX)
        if await self._has_legacy_entries():
            await self._entries.create_index(
                [
                    ("topic", ASCENDING),
                    ("partition", ASCENDING),
                    ("offset", ASCENDING),
                    (FINGERPRINT_FIELD, ASCENDING),
                ],
                unique=True,
            )
        elif _POSITION_INDEX in existing:
            await self._entries.drop_index(_POSITION_INDEX)
        # Unique: a replica appending after a stale global head is refused (and reads it again).
        await self._entries.create_index("global_sequence", unique=True, sparse=True)

    async def _has_legacy_entries(self) -> bool:
        """Whether an earlier release wrote here: it kept its heads in ``sequences`` and its
        processed keys in ``processed_messages``, and gave its entries ObjectIds."""
        for legacy in (self._legacy_heads, self._legacy_keys):
            if await legacy.find_one({}, {"_id": 1}) is not None:
                return True
        return False

    async def check_heads(self) -> None:
        """At start: the global head from the last entry, which must hash to what it says.

        A store of an earlier release also kept the heads in ``sequences``: the entry numbered
        like its global head must carry that head's hash. A mismatch is logged as an error (``crs
        audit verify --all`` names the break); audit goes on appending after the last entry.
        """
        self._global = await self.global_head() or Head()  # Head(): an empty chain, known to be
        last = await self._entries.find_one({"global_sequence": self._global.sequence})
        if last is not None and entry_hash(last) != last.get("entry_hash"):
            log.error("audit.head_mismatch", global_sequence=self._global.sequence)
        legacy = await self._legacy_heads.find_one({"_id": GLOBAL_HEAD_ID})
        if legacy is not None:
            recorded = await self._entries.find_one(
                {"global_sequence": int(legacy["last"])}, {"entry_hash": 1}
            )
            if recorded is None or recorded.get("entry_hash") != legacy.get("hash"):
                log.error("audit.head_mismatch", global_sequence=int(legacy["last"]), kept_in="sequences")
        log.info("audit.heads_checked", global_sequence=self._global.sequence)

    def append_on_commit(self, transaction: LedgerTransaction, record_id: str, entry: dict[str, Any]) -> None:
        """Collect ``entry`` (under ``record_id``) for the transaction's one insert before its commit."""
        pending = self._pending.get(transaction)
        if pending is None:
            pending = self._pending[transaction] = []
            collected = pending

            async def write() -> None:
                await self._append(collected, transaction)

            transaction.before_commit(write)
            # Not known committed (a failure, or a commit whose answer was lost): the heads in
            # memory may be behind or ahead of the database now, so they are read again.
            transaction.after_rollback(self._forget_heads)
        pending.append((record_id, entry))

    async def _append(
        self, records: list[tuple[str, dict[str, Any]]], transaction: LedgerTransaction
    ) -> None:
        """Seal and insert the records not recorded yet, in order, after their chains' heads.

        Why the chains cannot fork: within a process batches are sealed one after another, and
        the heads in memory move only once a batch has committed; a transaction not known to have
        committed (it failed, or the answer to its commit was lost) makes them be read again from
        the database. Every entry takes the next global number, which is unique: a replica (or a
        concurrent replay) that appends after a stale head is refused, its transaction fails and
        is tried again, with the heads read afresh. So every entry links to the entry committed
        just before it, provided that a commit the database acknowledged stays committed (the
        local database server is started so that a crash keeps it: ``crs.stack.DURABLE_COMMITS``).
        """
        session = transaction.session
        fresh = list(dict(records).items())  # a record twice in one batch is one entry
        recorded = await self._recorded([record_id for record_id, _ in fresh], session)
        fresh = [(record_id, entry) for record_id, entry in fresh if record_id not in recorded]
        if not fresh:
            return
        # A failure from here on (another writer, the database gone) fails the transaction, which
        # makes the heads be read again (see append_on_commit).
        global_head = self._global if self._global is not None else await self.global_head(session)
        heads = await self._heads_of({chain_of(entry) for _, entry in fresh}, session)
        sealed = seal([entry for _, entry in fresh], heads=heads, global_head=global_head or Head())
        for (record_id, _), entry in zip(fresh, sealed.entries, strict=True):
            entry["_id"] = record_id
        await self._entries.insert_many(sealed.entries, ordered=True, session=session)
        await self._request_heads.bulk_write(
            [
                UpdateOne(
                    {"_id": chain}, {"$set": {"sequence": head.sequence, "hash": head.hash}}, upsert=True
                )
                for chain, head in sealed.heads.items()
            ],
            ordered=False,
            session=session,
        )
        transaction.after_commit(lambda: self._advance(sealed))

    async def _recorded(self, record_ids: Sequence[str], session: AsyncClientSession) -> set[str]:
        found = {
            str(entry["_id"])
            async for entry in find_in(self._entries, "_id", record_ids, {"_id": 1}, session=session)
        }
        if self._legacy_keys_left is None:
            self._legacy_keys_left = await self._legacy_keys.find_one({}, {"_id": 1}) is not None
        if self._legacy_keys_left:  # recorded by an earlier release, which kept processed keys
            keys = find_in(self._legacy_keys, "_id", record_ids, {"_id": 1}, session=session)
            found |= {str(key["_id"]) async for key in keys}
        return found

    async def _heads_of(self, chains: set[str], session: AsyncClientSession) -> dict[str, Head]:
        heads = {chain: self._chains[chain] for chain in chains if chain in self._chains}
        missing = sorted(chains - set(heads) - {UNATTRIBUTED})
        if missing:
            cursor = self._entries.find(
                {"request_id": {"$in": missing}},
                {"request_id": 1, "sequence": 1, "entry_hash": 1},
                session=session,
            )
            async for entry in cursor:
                chain, sequence = str(entry["request_id"]), int(entry["sequence"])
                if chain not in heads or heads[chain].sequence < sequence:
                    heads[chain] = Head(sequence, entry.get("entry_hash"))
        if UNATTRIBUTED in chains and UNATTRIBUTED not in heads:
            found = await self._last_entry(UNATTRIBUTED, session)
            if found is not None:
                heads[UNATTRIBUTED] = found
        return heads

    def _advance(self, sealed: Sealed) -> None:
        self._global = sealed.global_head
        for chain, head in sealed.heads.items():
            self._chains[chain] = head
            self._chains.move_to_end(chain)
        while len(self._chains) > self._cached_chains:
            self._chains.popitem(last=False)

    def _forget_heads(self) -> None:
        self._global = None
        self._chains.clear()

    async def entries_of(self, chain: str) -> list[Document]:
        """The entries of a request's chain (or of ``UNATTRIBUTED``) in the chain's order."""
        query = {"request_id": {"$in": [None, UNATTRIBUTED]} if chain == UNATTRIBUTED else chain}
        return [entry async for entry in self._entries.find(query).sort("sequence", 1)]

    async def every_entry(self, *, through: int | None = None) -> AsyncIterator[Document]:
        """Every entry in the global chain's order, streamed; with ``through``, those numbered up
        to it (and any entry with no number at all, which verification reports as not sealed)."""
        query: Document = (
            {}
            if through is None
            else {"$or": [{"global_sequence": {"$lte": through}}, {"global_sequence": {"$exists": False}}]}
        )
        async for entry in self._entries.find(query).sort("global_sequence", 1):
            yield entry

    async def global_head(self, session: AsyncClientSession | None = None) -> Head | None:
        """The global chain's head as it is now: its last entry."""
        cursor = self._entries.find(
            {"global_sequence": {"$exists": True}}, {"global_sequence": 1, "entry_hash": 1}, session=session
        )
        async for last in cursor.sort("global_sequence", -1).limit(1):
            return Head(int(last["global_sequence"]), last.get("entry_hash"))
        return None

    async def head_of(self, chain: str) -> Head | None:
        """The recorded head of a request's chain (or of ``UNATTRIBUTED``), what its entries must reach.

        A chain last written by a release that kept no heads has none recorded: its last entry is
        its head then (and deleting that entry goes unseen until every entry is checked).
        """
        recorded = await self._request_heads.find_one({"_id": chain})
        if recorded is not None:
            return Head(int(recorded["sequence"]), recorded.get("hash"))
        return await self._last_entry(chain)

    async def _last_entry(self, chain: str, session: AsyncClientSession | None = None) -> Head | None:
        query = {"request_id": {"$in": [None, UNATTRIBUTED]} if chain == UNATTRIBUTED else chain}
        cursor = self._entries.find(query, {"sequence": 1, "entry_hash": 1}, session=session)
        async for last in cursor.sort("sequence", -1).limit(1):
            return Head(int(last["sequence"]), last.get("entry_hash"))
        return None

    async def heads(self) -> tuple[dict[str, Head], Head | None]:
        """Every request chain's recorded head (else its last entry, see :meth:`head_of`), and the
        global chain's."""
        recorded = {
            str(head["_id"]): Head(int(head["sequence"]), head.get("hash"))
            async for head in self._request_heads.find({})
        }
        requests: dict[str, Head] = {}
        async for entry in self._entries.find({}, {"request_id": 1, "sequence": 1, "entry_hash": 1}):
            chain = chain_of(entry)
            sequence = int(entry.get("sequence") or 0)
            if chain not in requests or requests[chain].sequence < sequence:
                requests[chain] = Head(sequence, entry.get("entry_hash"))
        return requests | recorded, await self.global_head()
