"""Audit's hash chains: sealing gives intact chains, and any tampering is found where it happened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.audit.chain import (
    GLOBAL,
    GLOBAL_CHAIN,
    HASHED_FIELDS,
    PER_REQUEST,
    BreakKind,
    Head,
    StoreVerification,
    at_storage_precision,
    canonical_json,
    chain_of,
    describe_break,
    entry_hash,
    seal,
    verify_chain,
    verify_chain_live,
)
from shared.topics import REQUEST_TOPICS

# Hypothesis bounds datetimes with naive values and attaches the zone itself.
moments = st.datetimes(
    min_value=datetime(2020, 1, 1),  # noqa: DTZ001
    max_value=datetime(2035, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
entry_contents = st.fixed_dictionaries(
    {
        "request_id": st.sampled_from(["REQ-A", "REQ-B", "REQ-C", None]),
        "event_type": st.sampled_from(["CrmRequestReceived", "RequestStatusChanged", "unreadable"]),
        "status": st.none() | st.sampled_from(["received", "validated", "closed"]),
        "customer_id": st.none() | st.text(max_size=8),
        "topic": st.sampled_from(REQUEST_TOPICS),
        "partition": st.integers(0, 3),
        "offset": st.integers(0, 10**9),
        "key": st.none() | st.text(max_size=10),
        "published_at": st.none() | moments,
        "recorded_at": moments,
        "text": st.text(max_size=40),
    }
)
batches = st.lists(st.lists(entry_contents, min_size=1, max_size=5), min_size=1, max_size=6)


@dataclass
class Store:
    """What the audit store would hold after sealing the batches one after another."""

    entries: list[dict[str, Any]]
    heads: dict[str, Head]
    global_head: Head

    def chain(self, name: str) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if chain_of(entry) == name]


def sealed_store(contents: list[list[dict[str, Any]]]) -> Store:
    entries: list[dict[str, Any]] = []
    heads: dict[str, Head] = {}
    global_head = Head()
    for batch in contents:
        sealed = seal(batch, heads=heads, global_head=global_head)
        entries += sealed.entries
        heads = {**heads, **sealed.heads}
        global_head = sealed.global_head
    return Store(entries, heads, global_head)


def changed(value: Any) -> Any:
    """A different value of the same kind, as someone editing the database might write."""
    if isinstance(value, bool) or value is None:
        return "edited"
    if isinstance(value, int):
        return value + 1
    if isinstance(value, datetime):
        return value + timedelta(milliseconds=1)
    return f"{value}!"


@given(batches)
def test_sealed_batches_make_intact_chains_that_end_at_their_heads(
    contents: list[list[dict[str, Any]]],
) -> None:
    store = sealed_store(contents)
    assert verify_chain(GLOBAL_CHAIN, store.entries, kind=GLOBAL, head=store.global_head) is None
    for name, head in store.heads.items():
        assert verify_chain(name, store.chain(name), head=head) is None
    assert [entry["global_sequence"] for entry in store.entries] == list(range(1, len(store.entries) + 1))
    verification = StoreVerification(heads_before=store.heads, settled_through=store.global_head.sequence)
    for entry in store.entries:
        verification.feed(entry)
    report = verification.finish(global_head=store.global_head)
    assert report.intact
    assert (report.entries, report.chains) == (len(store.entries), len(store.heads))


@given(batches, st.data())
def test_a_change_to_any_one_field_is_found_at_that_entry_in_both_chains(
    contents: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    store = sealed_store(contents)
    position = data.draw(st.integers(0, len(store.entries) - 1))
    name = data.draw(st.sampled_from([*HASHED_FIELDS, "entry_hash"]))
    original = store.entries[position]
    tampered = {**original, name: changed(original.get(name))}
    entries = [*store.entries[:position], tampered, *store.entries[position + 1 :]]

    found = verify_chain(GLOBAL_CHAIN, entries, kind=GLOBAL, head=store.global_head)
    assert found is not None
    assert (found.sequence, found.entry, found.kind) == (
        original["global_sequence"],
        tampered,
        BreakKind.CONTENT_CHANGED,
    )
    chain = [tampered if entry is original else entry for entry in store.chain(chain_of(original))]
    found = verify_chain(chain_of(original), chain, head=store.heads[chain_of(original)])
    assert found is not None
    assert (found.sequence, found.entry) == (original["sequence"], tampered)


@given(batches, st.data())
def test_a_deleted_entry_is_named_as_missing_in_both_chains(
    contents: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    store = sealed_store(contents)
    deleted = data.draw(st.sampled_from(store.entries))
    remaining = [entry for entry in store.entries if entry is not deleted]

    found = verify_chain(GLOBAL_CHAIN, remaining, kind=GLOBAL, head=store.global_head)
    assert found is not None
    assert (found.sequence, found.kind) == (deleted["global_sequence"], BreakKind.SEQUENCE_GAP)
    name = chain_of(deleted)
    chain = [entry for entry in store.chain(name) if entry is not deleted]
    found = verify_chain(name, chain, head=store.heads[name])
    assert found is not None
    assert (found.sequence, found.kind) == (deleted["sequence"], BreakKind.SEQUENCE_GAP)


@given(batches, st.data())
def test_two_swapped_entries_are_found_where_the_first_of_them_should_be(
    contents: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    store = sealed_store([*contents, [contents[0][0]]])  # at least two entries
    first, second = sorted(
        data.draw(st.lists(st.integers(0, len(store.entries) - 1), min_size=2, max_size=2, unique=True))
    )
    entries = list(store.entries)
    entries[first], entries[second] = entries[second], entries[first]

    found = verify_chain(GLOBAL_CHAIN, entries, kind=GLOBAL, head=store.global_head)
    assert found is not None
    assert found.sequence == store.entries[first]["global_sequence"]
    assert found.entry is store.entries[second]


def test_an_entry_rewritten_with_a_fresh_hash_breaks_the_link_of_the_next_one() -> None:
    store = sealed_store([[content("REQ-A", "one"), content("REQ-A", "two"), content("REQ-A", "three")]])
    forged = {**store.entries[1], "text": "forged"}
    forged["entry_hash"] = entry_hash(forged)
    chain = [store.entries[0], forged, store.entries[2]]
    found = verify_chain("REQ-A", chain, head=store.heads["REQ-A"])
    assert found is not None
    assert (found.sequence, found.kind) == (3, BreakKind.PREVIOUS_HASH_MISMATCH)
    assert describe_break(found).startswith(
        "REQ-A #3 (request REQ-A #3, global #3, crm.requests.v1 partition 0"
    )


def test_entries_deleted_at_the_end_are_found_against_the_head() -> None:
    store = sealed_store([[content("REQ-A", "one"), content("REQ-A", "two"), content("REQ-A", "three")]])
    found = verify_chain("REQ-A", store.entries[:1], kind=PER_REQUEST, head=store.heads["REQ-A"])
    assert found is not None
    assert (found.sequence, found.kind, found.entry) == (2, BreakKind.SEQUENCE_GAP, None)
    assert describe_break(found) == (
        "REQ-A #2 (missing): gap in the sequence: the chain ends at #1 but its head says #3: #2..#3 missing"
    )


def test_a_gap_names_the_missing_number_and_the_entry_found_in_its_place() -> None:
    store = sealed_store([[content("REQ-A", "one"), content("REQ-A", "two"), content("REQ-A", "three")]])
    found = verify_chain("REQ-A", [store.entries[0], store.entries[2]], head=store.heads["REQ-A"])
    assert found is not None
    assert describe_break(found) == (
        "REQ-A #2 (missing; next is request REQ-A #3, global #3, crm.requests.v1 partition 0 offset 0): "
        "gap in the sequence: expected #2, found #3: #2 missing"
    )


def test_a_head_without_any_entries_means_the_whole_chain_was_deleted() -> None:
    store = sealed_store([[content("REQ-A", "one")], [content("REQ-B", "two")]])
    verification = StoreVerification(heads_before=store.heads, settled_through=store.global_head.sequence)
    for entry in store.entries:
        if entry["request_id"] != "REQ-A":
            verification.feed(entry)
    report = verification.finish(global_head=store.global_head)
    assert not report.intact
    assert report.global_break is not None
    assert report.global_break.sequence == 1
    assert [(found.chain, found.sequence) for found in report.request_breaks] == [("REQ-A", 1)]


def test_a_batch_continues_the_chains_after_their_heads() -> None:
    first = seal([content("REQ-A", "one"), content(None, "?")], heads={}, global_head=Head())
    second = seal([content("REQ-A", "two")], heads=first.heads, global_head=first.global_head)
    (entry,) = second.entries
    assert (entry["sequence"], entry["global_sequence"]) == (2, 3)
    assert entry["previous_hash"] == first.entries[0]["entry_hash"]
    assert entry["global_previous_hash"] == first.entries[1]["entry_hash"]
    assert first.heads["__unattributed__"].sequence == 1


def test_the_canonical_form_is_sorted_compact_ascii_json_with_utc_microsecond_times() -> None:
    at = datetime(2026, 11, 23, 16, 17, 0, 123000, tzinfo=timezone(timedelta(hours=1)))
    assert canonical_json({"text": "Größe", "at": at, "n": 3, "none": None}) == (
        b'{"at":"2026-11-23T15:17:00.123000Z","n":3,"none":null,"text":"Gr\\u00f6\\u00dfe"}'
    )
    # A naive datetime, as PyMongo returns without tz_aware, is UTC.
    assert canonical_json({"at": datetime(2026, 11, 23, 15, 17)}) == b'{"at":"2026-11-23T15:17:00.000000Z"}'  # noqa: DTZ001


def test_an_entry_with_a_field_the_hash_would_not_cover_is_refused() -> None:
    with pytest.raises(ValueError, match="approved_by"):
        seal([{**content("REQ-A", "x"), "approved_by": "someone"}], heads={}, global_head=Head())


def test_floats_have_no_canonical_form() -> None:
    with pytest.raises(TypeError, match="floats"):
        canonical_json({"amount": 1.5})


def test_times_are_sealed_at_the_precision_the_database_keeps() -> None:
    (entry,) = seal(
        [{**content("REQ-A", "x"), "recorded_at": datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)}],
        heads={},
        global_head=Head(),
    ).entries
    assert entry["recorded_at"].microsecond == 123000
    assert at_storage_precision(entry["recorded_at"]) == entry["recorded_at"]


def content(request_id: str | None, text: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "event_type": "CrmRequestReceived",
        "status": None,
        "customer_id": None,
        "topic": "crm.requests.v1",
        "partition": 0,
        "offset": 0,
        "key": request_id,
        "published_at": None,
        "recorded_at": datetime(2026, 11, 23, 15, 0, tzinfo=UTC),
        "text": text,
    }


@given(batches, batches)
def test_a_store_read_while_audit_appends_is_intact_up_to_where_it_was_cut(
    before: list[list[dict[str, Any]]], during: list[list[dict[str, Any]]]
) -> None:
    """Heads read, then more batches sealed, then the entries read up to the global head."""
    old = sealed_store(before)
    now = sealed_store(before + during)
    verification = StoreVerification(heads_before=old.heads, settled_through=old.global_head.sequence)
    for entry in now.entries:
        verification.feed(entry)
    report = verification.finish(global_head=now.global_head)
    assert report.intact, report
    for name in now.heads:
        found = verify_chain_live(
            name, now.chain(name), head_before=old.heads.get(name), settled_through=old.global_head.sequence
        )
        assert found is None


def test_a_live_check_still_finds_an_entry_its_head_never_covered_and_a_deleted_last_entry() -> None:
    store = sealed_store([[content("REQ-A", "one"), content("REQ-A", "two")], [content("REQ-A", "three")]])
    last = store.chain("REQ-A")[-1]
    # The head is one behind, though the entry is older than the global head read before it.
    behind = Head(store.heads["REQ-A"].sequence - 1, store.chain("REQ-A")[-2]["entry_hash"])
    found = verify_chain_live(
        "REQ-A", store.chain("REQ-A"), head_before=behind, settled_through=store.global_head.sequence
    )
    assert found is not None
    assert (found.kind, found.sequence, found.entry) == (BreakKind.HEAD_MISMATCH, last["sequence"], last)
    # The last entry deleted: the head read before still names it.
    found = verify_chain_live(
        "REQ-A",
        store.chain("REQ-A")[:-1],
        head_before=store.heads["REQ-A"],
        settled_through=store.global_head.sequence,
    )
    assert found is not None
    assert found.kind is BreakKind.SEQUENCE_GAP


def test_a_record_at_a_reused_position_has_another_fingerprint_and_a_redelivered_one_the_same() -> None:
    from services.audit.chain import FINGERPRINT_FIELD, record_fingerprint

    published = datetime(2026, 11, 30, 8, 0, 0, 123456, tzinfo=UTC)
    old = record_fingerprint(published_at=published, key="REQ-1", text='{"a": 1}')
    assert record_fingerprint(published_at=published, key="REQ-1", text='{"a": 1}') == old
    assert (
        record_fingerprint(published_at=published + timedelta(milliseconds=1), key="REQ-1", text='{"a": 1}')
        != old
    )
    assert record_fingerprint(published_at=published, key="REQ-1", text='{"a": 2}') != old
    entry = {
        "request_id": "REQ-1",
        "topic": "t",
        "partition": 0,
        "offset": 0,
        "key": "REQ-1",
        "published_at": published,
        "text": '{"a": 1}',
    }
    (sealed,) = seal([entry], heads={}, global_head=Head()).entries
    assert sealed[FINGERPRINT_FIELD] == old


def test_the_audit_service_builds_outside_an_event_loop() -> None:
    """`python -m services.audit` builds the app before it starts the loop (aiokafka's clients
    must not be made then)."""
    from services.audit.app import build_app

    app, settings = build_app()
    assert settings.incarnation_check_seconds == 5.0
    assert app is not None
