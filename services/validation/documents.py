"""Which of the customer's documents a request names, from the numbers it gives. Pure functions.

A request names documents three ways: in a structured field (a CRM case's ``invoice_ids``), after
a document word in its text (``invoice_candidates``: "Rechnung RE/2026/0042") or as a number that
stands alone in the text (``loose_candidates``). Each number is looked for among the customer's
own documents: exactly as written first, then normalised (:func:`shared.document_numbers.number_keys`):

- one document: the number names it;
- several: the customer must say which (a question, never a guess);
- none: a structured number is waited for as before (the ERP may not have sent it yet, or it is
  someone else's); a number from the text is not a document; a loose number only counts when it
  names exactly one document and no other number named any.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

Source = Literal["field", "text", "loose"]


class Document(Protocol):
    """An invoice or a payment, as far as telling which one is meant goes."""

    @property
    def customer_id(self) -> str: ...


DocumentT = TypeVar("DocumentT", bound=Document)


@dataclass(frozen=True)
class NamedNumber:
    """One number the request gives and the customer's documents it names."""

    written: str
    source: Source
    document_ids: tuple[str, ...]


@dataclass(frozen=True)
class NamedDocuments(Generic[DocumentT]):
    """What the numbers of one kind (invoices or payments) name among the customer's documents."""

    documents: tuple[DocumentT, ...]
    """The documents named, in the order first named, each once."""
    ambiguous: tuple[NamedNumber, ...]
    """Numbers that name several of the customer's documents: the customer must choose."""
    unmatched_fields: tuple[str, ...]
    """Structured numbers that name none of the customer's documents: known to nobody yet, or another
    customer's (the caller holds or rejects them as before)."""
    unmatched_text: tuple[str, ...]
    """Numbers from the text (after a document word) that name none of the customer's documents."""
    readings: tuple[NamedNumber, ...]
    """Every number read, with what it names, for the record."""

    def describe(self, kind: str) -> str:
        """The readings as one line for the checks: ``RE 2026 42 -> RE/2026/0042; 4712 -> none``."""
        parts = []
        for reading in self.readings:
            named = ", ".join(reading.document_ids) or "none"
            where = {"field": "field", "text": "text", "loose": "text, standing alone"}[reading.source]
            parts.append(f"{reading.written} ({where}) -> {named}")
        return f"{kind} numbers read: " + "; ".join(parts)


def name_documents(
    *,
    customer_id: str,
    fields: Sequence[str],
    text: Sequence[str],
    loose: Sequence[str],
    exact: Mapping[str, DocumentT | None],
    by_number: Mapping[str, Sequence[DocumentT]],
    id_of: Callable[[DocumentT], str],
) -> NamedDocuments[DocumentT]:
    """Resolve the numbers of one kind against the customer's documents (see the module's rules).

    ``exact`` holds the document stored under each number as written (any customer's, or None);
    ``by_number`` every document whose normalised number matches it (any customer's). Only the
    customer's own documents are ever named: another customer's number in the text means nothing.
    """
    chosen: dict[str, DocumentT] = {}
    readings: list[NamedNumber] = []
    ambiguous: list[NamedNumber] = []
    unmatched_fields: list[str] = []
    unmatched_text: list[str] = []
    sources: tuple[tuple[Source, Sequence[str]], ...] = (("field", fields), ("text", text))
    for source, numbers in sources:
        for written in dict.fromkeys(numbers):
            own = _own_matches(written, customer_id, exact, by_number, id_of)
            reading = NamedNumber(written, source, tuple(id_of(document) for document in own))
            readings.append(reading)
            if len(own) == 1:
                chosen.setdefault(id_of(own[0]), own[0])
            elif own:
                ambiguous.append(reading)
            elif source == "field":
                unmatched_fields.append(written)
            else:
                unmatched_text.append(written)
    if not chosen and not ambiguous and not unmatched_fields:
        for written in dict.fromkeys(loose):
            own = _own_matches(written, customer_id, exact, by_number, id_of)
            readings.append(NamedNumber(written, "loose", tuple(id_of(document) for document in own)))
            if len(own) == 1:
                chosen.setdefault(id_of(own[0]), own[0])
    return NamedDocuments(
        documents=tuple(chosen.values()),
        ambiguous=tuple(ambiguous),
        unmatched_fields=tuple(unmatched_fields),
        unmatched_text=tuple(unmatched_text),
        readings=tuple(readings),
    )


def _own_matches(
    written: str,
    customer_id: str,
    exact: Mapping[str, DocumentT | None],
    by_number: Mapping[str, Sequence[DocumentT]],
    id_of: Callable[[DocumentT], str],
) -> list[DocumentT]:
    """The customer's documents a number names: the one stored under it exactly, else all that match
    once normalised."""
    exactly = exact.get(written) or exact.get(written.strip())
    if exactly is not None and exactly.customer_id == customer_id:
        return [exactly]
    own: dict[str, DocumentT] = {}
    for document in by_number.get(written, ()):
        if document.customer_id == customer_id:
            own.setdefault(id_of(document), document)
    return list(own.values())


def numbers_to_look_up(*groups: Iterable[str]) -> tuple[str, ...]:
    """Every distinct number of the groups, for one lookup of the views."""
    return tuple(dict.fromkeys(number for group in groups for number in group))
