"""Document numbers in the demo ERP's canonical form (``INV-2026-000123``), behind a word or code.

Numbers in any other format are read as candidates by :mod:`shared.document_numbers`.
"""

from __future__ import annotations

import re

_NUMBER_WORD = r"(?:\s{0,2}(?:nos?|nr|num|number|nummer|n°|nº|no°|numéro|número|núm|nro)(?![^\W\d_])\.?)?"
_BEFORE_YEAR = r"[\s#:._/\-–]{0,4}"
_BEFORE_NUMBER = r"[\s._/\-–]{0,3}"
_MAX_DIGITS = 12  # the canonical formats say "six or more"; more than twelve is a bank account


def _document_pattern(code: str, words: str, min_digits: int) -> re.Pattern[str]:
    """A document number behind its code (``INV``) or a word (``invoice``, ``Rechnung``).

    After a code any four-digit year is accepted (``INV-0001-000123`` is canonical); after a
    word only 19xx/20xx, which keeps ``invoice 1234 567890`` and the like out. Without a code or
    word in front nothing is taken: a bare number is a phone number or a bank account as often
    as it is an invoice.
    """
    return re.compile(
        rf"(?<![^\W_])(?:{code}{_NUMBER_WORD}{_BEFORE_YEAR}(?P<code_year>\d{{4}})"
        rf"|(?:{words}){_NUMBER_WORD}{_BEFORE_YEAR}(?P<word_year>(?:19|20)\d\d))"
        rf"(?P<separator>{_BEFORE_NUMBER})(?P<number>\d{{{min_digits},{_MAX_DIGITS}}})(?!\d)",
        re.IGNORECASE,
    )


_INVOICE_NUMBER = _document_pattern(
    "inv", r"invoices?|rechnung(?:en|snummer|snr|s-nr)?|factures?|facturas?|factuur|fattura", 6
)
_PAYMENT_NUMBER = _document_pattern(
    "pay", r"payments?|zahlung(?:en)?|paiements?|pagos?|betaling(?:en)?|remittance", 6
)
_CONTRACT_NUMBER = _document_pattern(
    "ctr", r"contracts?|agreement|vertrag(?:snummer|snr)?|contrats?|contratos?", 4
)


def find_invoice_numbers(text: str) -> tuple[str, ...]:
    """Canonical invoice ids (``INV-2026-000123``) in order of first appearance, without repeats.

    Accepts ``inv 2026 000123``, ``INV2026000123``, ``Invoice #2026-000123``, ``invoice no.
    2026/000123``, ``Rechnung 2026-000123``, ``facture n° ...``, ``factura ...`` and the like.
    """
    return _find_documents(_INVOICE_NUMBER, "INV", text)


def find_payment_numbers(text: str) -> tuple[str, ...]:
    """Canonical payment ids (``PAY-2026-000045``), in the same variations as invoice numbers."""
    return _find_documents(_PAYMENT_NUMBER, "PAY", text)


def find_contract_numbers(text: str) -> tuple[str, ...]:
    """Canonical contract ids (``CTR-2026-0003``), in the same variations as invoice numbers."""
    return _find_documents(_CONTRACT_NUMBER, "CTR", text)


def _find_documents(pattern: re.Pattern[str], prefix: str, text: str) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for match in pattern.finditer(text):
        year = match.group("code_year") or match.group("word_year")
        number = match.group("number")
        if match.group("word_year") and _is_year_range(year, match.group("separator"), number):
            continue  # "contract 2026-2027" names a period, not a contract
        found.setdefault(f"{prefix}-{year}-{number}", None)
    return tuple(found)


def _is_year_range(year: str, separator: str, number: str) -> bool:
    return len(number) == 4 and separator.strip() in ("-", "/", "–") and int(number) == int(year) + 1
