"""Invoice and payment numbers the way customers and banks write them. Pure functions, no I/O.

ERPs number their documents in any format (``INV-2026-000123``, ``4711``, ``RE/2026/0042``,
``90012345-A``) and customers copy them loosely (``inv 2026 123``, ``Rechnung 4711``, ``re-2026-42``).
Two numbers name the same document when they agree after normalisation: case, spaces, dashes,
slashes, dots, leading zeros of each group of digits, and a leading prefix such as ``INV``,
``RE``, ``Rechnung``, ``Facture``, ``Invoice`` or ``Factura`` (with ``No.``/``Nr.``/``#``) present or
not. :func:`number_keys` gives every normalised form a number can be found under; a document
view stores them (indexed) and a lookup asks for the keys of what the customer wrote.

Reading text (:func:`find_document_numbers`) yields *candidates*: what follows a document word or
code. Whether a candidate is a document is decided against the customer's own documents
(validation), never here: a candidate that matches none is just a number.

Every regular expression here is linear on its input (bounded quantifiers, no nested repetition):
texts are up to 100,000 characters of whatever a sender typed.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final, Literal

DocumentKind = Literal["invoice", "payment"]

MAX_CANDIDATES: Final = 20
"""More candidates than this in one text are not read: a statement pasted in is not a request."""

_MAX_NUMBER_LENGTH: Final = 40

# Words and codes that may stand in front of a number, in the languages the mailbox sees. The
# code forms (INV, RE, PAY) count as part of a number only when a separator or digit follows.
_DOCUMENT_WORDS: Final = {
    "invoice": (
        r"invoices?|inv|rechnung(?:en|snummer|snr|s-nr)?|rg|re|factures?|facturas?|factuur|fatturas?"
        r"|fattura|fact|fac|bill|beleg(?:nummer|nr)?"
    ),
    "payment": r"payments?|pay|zahlung(?:en|snummer|snr)?|paiements?|pagos?|betaling(?:en)?|remittance",
}
_NUMBER_WORDS: Final = r"nos?|nr|num|number|nummer|n°|nº|no°|numéro|número|núm|nro|ref|reference"
_PREFIX: Final = re.compile(
    rf"^(?:(?:{_DOCUMENT_WORDS['invoice']}|{_DOCUMENT_WORDS['payment']})(?![A-Z])[\s.:#_/\\-]{{0,3}})?"
    rf"(?:(?:{_NUMBER_WORDS})(?![A-Z])[\s.:#_/\\-]{{0,3}})?",
    re.IGNORECASE,
)
_PIECES: Final = re.compile(r"[A-Z]+|\d+")


def number_keys(number: str) -> tuple[str, ...]:
    """Every normalised form ``number`` can be found under; empty when it has no digit.

    Two forms, because a run of digits cannot be split back into its groups: the compact form
    (letters and digits, nothing else: ``INV2026000123`` and ``INV-2026-000123`` both give
    ``2026000123``) and the grouped form without leading zeros (``RE/2026/0042`` and ``re 2026 42``
    both give ``2026-42``). A leading document word or code is dropped. A number without a digit,
    has no keys.
    """
    # The limit applies to the number after its document word ("Rechnung Nr. " does not count
    # against it), so a long number keeps the same keys whichever word stands in front of it.
    text = unicodedata.normalize("NFKC", number).upper().strip()[: 2 * _MAX_NUMBER_LENGTH]
    prefix = _PREFIX.match(text)
    body = (text[prefix.end() :] if prefix is not None else text)[:_MAX_NUMBER_LENGTH]
    pieces = _PIECES.findall(body)
    if not any(piece.isdigit() for piece in pieces):
        return ()
    compact = "".join(pieces)
    grouped = "-".join(piece.lstrip("0") or "0" if piece.isdigit() else piece for piece in pieces)
    return tuple(dict.fromkeys((compact, grouped)))


def same_number(first: str, second: str) -> bool:
    """Whether two written numbers name the same document (their keys meet)."""
    return bool(set(number_keys(first)) & set(number_keys(second)))


# A number as written after a document word: letters and digits joined by single separators, with
# at least one digit; or a year and a number apart ("2026 123"). Dots only between digits of a
# longer code, never as the last separator before two digits (that is an amount: "18,500.00").
_YEAR_AND_NUMBER = r"(?:19|20)\d\d[ \u00a0]\d{3,12}(?!\d|[.,]\d)"
_WRITTEN_NUMBER = r"(?=[A-Z/_-]{0,12}\d)[A-Z0-9](?:[A-Z0-9]|[-/_](?=[A-Z0-9])){0,39}"
_NUMBER = rf"(?:{_YEAR_AND_NUMBER}|{_WRITTEN_NUMBER})"
_AMOUNT_OR_DATE_AFTER = re.compile(r"[.,:]\d")
_LIST_SEPARATOR = r"(?:\s{0,2}(?:,|;|&|\+|/)\s{0,2}|\s{1,2}(?:and|und|et|y|en|or|oder|ou|o)\s{1,2})"


def _candidates_pattern(kind: DocumentKind) -> re.Pattern[str]:
    words = _DOCUMENT_WORDS[kind]
    return re.compile(
        rf"(?<![\w])(?P<word>{words})(?![^\W\d_])"
        rf"(?:\s{{0,2}}(?:{_NUMBER_WORDS})(?![^\W\d_])\.?)?(?P<gap>[\s#:._/\\-]{{0,4}})"
        rf"(?P<first>{_NUMBER})(?P<rest>(?:{_LIST_SEPARATOR}{_NUMBER}){{0,{MAX_CANDIDATES}}})",
        re.IGNORECASE,
    )


_CANDIDATES: Final = {kind: _candidates_pattern(kind) for kind in ("invoice", "payment")}
_LIST_ITEM: Final = re.compile(rf"{_LIST_SEPARATOR}(?P<number>{_NUMBER})", re.IGNORECASE)
_CODES: Final = {"invoice": ("INV", "RE", "RG", "FAC"), "payment": ("PAY",)}
_CODE_INSIDE: Final = re.compile(r"(?<![\w-])(?P<head>[A-Z0-9]{1,6}-)$", re.IGNORECASE)


def find_document_numbers(text: str, kind: DocumentKind) -> tuple[str, ...]:
    """Candidate numbers of ``kind`` in ``text``, as written, in order of appearance, no repeats.

    A candidate follows a document word or code (``invoice 4711``, ``Rechnung Nr. RE/2026/0042``,
    ``facture n° 90012345-A``, ``inv 2026 123``, ``INV-2026-000123``, ``invoices 4711, 4712 and
    4713``). A code written against its number (``RE/2026/0042``, ``INV2026000123``) stays part
    of the candidate, as the ERP may number that way; a word does not. Numbers followed by a
    decimal part or a date's separator (``18,500.00``, ``28.09.2026``) are amounts and dates, not
    candidates, and so is anything without a digit.
    """
    found: dict[str, None] = {}
    for match in _CANDIDATES[kind].finditer(text):
        items = [(match.group("first"), match.end("first"))]
        items += [(item.group("number"), match.start("rest") + item.end()) for item in
                  _LIST_ITEM.finditer(match.group("rest"))]  # fmt: skip
        code = match.group("word")
        attached = code.upper() in _CODES[kind] and match.group("gap") in ("", "-", "/", "_")
        for position, (number, end) in enumerate(items):
            if _AMOUNT_OR_DATE_AFTER.match(text, end) or not number_keys(number):
                break  # the list ends where an amount or a date starts
            written = f"{code}{match.group('gap')}{number}" if attached and position == 0 else number
            if attached and position == 0:
                # A code inside a longer number (Dynamics' "PS-INV48219"): the whole number.
                inside = _CODE_INSIDE.search(text, max(0, match.start() - 8), match.start())
                written = f"{inside.group('head')}{written}" if inside else written
            found.setdefault(written, None)
            if len(found) >= MAX_CANDIDATES:
                return tuple(found)
    return tuple(found)


# Numbers with no word in front: only ones that cannot be much else (four digits or more, and a
# letter or separator in them, or six digits or more), and never parts of dates, amounts,
# phone numbers or IBANs.
_LOOSE = re.compile(
    r"(?<![\w+./,:-])(?P<number>(?:[A-Z]{1,4}[-/]?)?\d[\dA-Z]{0,15}(?:[-/][\dA-Z]{1,12}){0,3})(?![\w/]|[.,:]\d|-\w)",
    re.IGNORECASE,
)


# Numbers that say what else they are: a contract, an order, an account, a phone.
_OTHER_NUMBER_CODE = re.compile(r"(?:CTR|PO|SO|ORD|CUST|KD|ACC|TEL)[-/]?\d", re.IGNORECASE)
_OTHER_NUMBER_BEFORE = re.compile(
    r"(?<![^\W\d_])(?:contracts?|agreement|vertrag\w{0,8}|contrats?|contratos?|po|p\.o\.|purchase order"
    r"|order|bestellung|bestellnummer|auftrag\w{0,6}|customer|kunde\w{0,6}|client|account|konto"
    r"|vat|ust-?id\w{0,3}|iban|bic|swift|tel|phone|telefon|fax|mobile|mobil|case|ticket)"
    r"[\s.:#-]{0,4}(?:no|nr|number|nummer|id)?[\s.:#-]{0,4}$",
    re.IGNORECASE,
)
_DATE_LIKE = re.compile(r"(?:19|20)\d\d[-/]\d{1,2}[-/]\d{1,2}|\d{1,2}[-/]\d{1,2}[-/](?:19|20)?\d\d")


def find_loose_numbers(text: str) -> tuple[str, ...]:
    """Numbers that stand alone in ``text`` and could be a document's (``90012345-A``, ``2026/0042``).

    Weaker than :func:`find_document_numbers`: nothing says they are documents, so validation only
    takes one when it names exactly one of the customer's documents and no worded candidate did.
    """
    found: dict[str, None] = {}
    for match in _LOOSE.finditer(text):
        number = match.group("number")
        if _DATE_LIKE.fullmatch(number) or _OTHER_NUMBER_CODE.match(number):
            continue
        if _OTHER_NUMBER_BEFORE.search(text, max(0, match.start() - 30), match.start()):
            continue
        digits = sum(char.isdigit() for char in number)
        marked = any(not char.isdigit() for char in number)
        if digits >= 6 or (digits >= 4 and marked):
            found.setdefault(number, None)
            if len(found) >= MAX_CANDIDATES:
                break
    return tuple(found)


_REFERENCE_CHUNK = re.compile(r"[^\s,;+&]{1,40}")
_MAX_REFERENCE_CHUNKS = 60


def reference_numbers(reference: str) -> tuple[str, ...]:
    """Every number-like token of a bank reference, for matching: ``RE 2026 0042 / 4711`` gives
    ``4711``, ``2026 0042``, ``RE 2026 0042`` and the like.

    A bank reference is short and made of numbers and names, and banks cut and space numbers as
    they like; so every chunk with a digit counts, and so do two or three neighbouring chunks read
    as one number. Matching against the customer's documents decides what they are.
    """
    chunks = [chunk.strip("./:#-") for chunk in _REFERENCE_CHUNK.findall(reference[:1_000])]
    chunks = [chunk for chunk in chunks if chunk][:_MAX_REFERENCE_CHUNKS]
    found: dict[str, None] = {}
    for start in range(len(chunks)):
        for length in (1, 2, 3):
            if start + length > len(chunks):
                break
            number = " ".join(chunks[start : start + length])
            if number_keys(number):
                found.setdefault(number, None)
    return tuple(found)
