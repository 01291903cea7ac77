"""What an email asks for: sender, documents, amounts, dates and the type of request. No I/O.

Finance mailboxes receive replies, forwards, signatures full of numbers and half a dozen ways of
writing one invoice number or one amount. This module reads the *sender's own words* (the
subject, the text they typed and anything they forwarded; not the thread they quoted, not their
signature) and extracts what intake needs, conservatively:

* a document number is only taken when a keyword or code stands in front of it, so phone numbers,
  VAT ids, IBANs and postcodes never become invoices;
* an amount is only taken with a currency symbol or code next to it;
* an amount is only called *disputed*, *expected* or a *requested credit limit* when the words
  right in front of it say so, and never when it is a unit price, because resolution turns an
  expected amount into a credit memo;
* the request type comes from weighted rules (data, not code) and is ``None`` whenever the best
  type does not clearly win: such a request goes to a person, it is never defaulted.

Every regular expression here is linear on its input (bounded quantifiers, no nested
repetition), because bodies are up to 100,000 characters of whatever a sender typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from enum import Enum
from typing import Final

from pydantic import ValidationError

from shared.contract import RequestType
from shared.document_numbers import MAX_CANDIDATES, find_document_numbers, find_loose_numbers
from shared.events import StatedAmount
from shared.money import Money

CONFIDENT_ENOUGH: Final = 0.6
"""Below this confidence the type is ``None`` and a person classifies the request."""

_MAX_HEADER_LINE = 400  # attribution lines longer than this are prose, not "On ... wrote:"


# --------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Classification:
    """The request type the words suggest, how sure that is, and the words that decided it."""

    request_type: RequestType | None
    confidence: float
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class EmailUnderstanding:
    """Everything intake takes from one email; empty or ``None`` where the email does not say."""

    sender_name: str | None
    sender_email: str | None
    invoice_ids: tuple[str, ...]
    payment_ids: tuple[str, ...]
    contract_ids: tuple[str, ...]
    mentioned_amounts: tuple[Money, ...]
    disputed_amount: Money | None
    expected_amount: Money | None
    requested_credit_limit: Money | None
    mentioned_dates: tuple[date, ...]
    request_type: RequestType | None
    type_confidence: float
    type_evidence: tuple[str, ...]
    invoice_candidates: tuple[str, ...] = ()
    payment_candidates: tuple[str, ...] = ()
    loose_candidates: tuple[str, ...] = ()
    stated_amounts: tuple[StatedAmount, ...] = ()
    paid_amount: Money | None = None
    payment_date: date | None = None


def understand_email(
    *, subject: str, body_text: str, sender: str, received_on: date | None = None
) -> EmailUnderstanding:
    """Read one email the way a finance clerk would: the sender's own words first.

    Documents come from the subject and the sender's own text (forwarded messages included); only
    when those name no document at all are the quoted messages' documents used, as for a customer
    who answers "still not fixed" to our statement. Amounts, dates and the type come from the
    subject and the own text only: a quoted thread says what *we* wrote, not what they ask.

    ``invoice_ids`` (and payment, contract ids) are the demo ERP's canonical form
    (``INV-2026-000123``), kept as evidence for the type; ``invoice_candidates`` are the numbers as
    written, in any format, which validation resolves against the customer's documents. Given
    ``received_on``, dates without a year and relative ones ("last Friday") are read from it.
    """
    name, address = parse_sender(sender)
    parts = split_body(body_text, subject=subject)
    text = f"{subject}\n{parts.own}"
    invoices, payments, contracts = _documents(text)
    facts = understand_text(text, today=received_on)
    invoice_candidates, payment_candidates = facts.invoice_candidates, facts.payment_candidates
    if not (invoices or payments or contracts or invoice_candidates or payment_candidates):
        invoices, payments, contracts = _documents(parts.quoted)
        invoice_candidates = find_document_numbers(parts.quoted, "invoice")
        payment_candidates = find_document_numbers(parts.quoted, "payment")
    amounts = facts.amounts
    classification = classify(
        parts.own,
        subject=subject,
        invoice_ids=invoices or invoice_candidates,
        payment_ids=payments or payment_candidates,
        contract_ids=contracts,
    )
    return EmailUnderstanding(
        sender_name=name,
        sender_email=address,
        invoice_ids=invoices,
        payment_ids=payments,
        contract_ids=contracts,
        mentioned_amounts=amounts.mentioned,
        disputed_amount=amounts.disputed,
        expected_amount=amounts.expected,
        requested_credit_limit=amounts.requested_credit_limit,
        mentioned_dates=facts.dates,
        request_type=classification.request_type,
        type_confidence=classification.confidence,
        type_evidence=classification.evidence,
        invoice_candidates=_with_canonical(invoice_candidates, invoices),
        payment_candidates=_with_canonical(payment_candidates, payments),
        loose_candidates=facts.loose_candidates,
        stated_amounts=amounts.stated,
        paid_amount=amounts.paid,
        payment_date=facts.payment_date,
    )


def _with_canonical(candidates: tuple[str, ...], canonical: tuple[str, ...]) -> tuple[str, ...]:
    """The candidates as written, then the canonical forms read of them that add a new number."""
    return tuple(dict.fromkeys((*candidates, *canonical)))[:MAX_CANDIDATES]


def _documents(text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    return find_invoice_numbers(text), find_payment_numbers(text), find_contract_numbers(text)


# --------------------------------------------------------------------------------------
# The sender
# --------------------------------------------------------------------------------------

# Deliberately simpler than RFC 5322: what real finance contacts use, including internationalised
# local parts and domains. A string that is not this is not an address we can match to a contact.
_LOCAL_PART = r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}"
_DOMAIN = r"(?:[^\W_][\w-]{0,62}\.){1,8}[^\W\d_]{2,63}"
_ADDRESS = re.compile(rf"{_LOCAL_PART}@{_DOMAIN}")
_ANGLE_ADDRESS = re.compile(r"<([^<>]{0,320})>\s*$")
_COMMENT_NAME = re.compile(r"^(\S+)\s*\(([^()]{0,200})\)$")


def parse_sender(value: str) -> tuple[str | None, str | None]:
    """The display name and the lower-cased address of a ``From`` value; ``None`` where missing.

    Handles ``Jane Doe <Jane.Doe@Acme.example>``, ``"Doe, Jane" <...>``, a bare address, the
    old ``jane@acme.example (Jane Doe)`` form and MIME encoded words a gateway left undecoded.
    Anything that is not a plausible address gives ``None`` for the address: matching it to the
    customer master is validation's job, and a guessed address would match the wrong customer.
    """
    text = _decode_encoded_words(value[:1_000]).strip()
    angle = _ANGLE_ADDRESS.search(text)
    if angle is not None:
        raw_name, raw_address = text[: angle.start()], angle.group(1)
    elif (comment := _COMMENT_NAME.match(text)) is not None:
        raw_address, raw_name = comment.group(1), comment.group(2)
    else:
        raw_name, raw_address = "", text
    address = _clean_address(raw_address)
    if angle is None and address is None:
        return None, None  # neither an address nor a name we can trust: garbage
    return _clean_name(raw_name, address), address


def _decode_encoded_words(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return value  # an unknown charset: keep the raw text rather than lose the address


def _clean_address(raw: str) -> str | None:
    candidate = raw.strip().removeprefix("mailto:").strip()
    if not _ADDRESS.fullmatch(candidate):
        return None
    local = candidate.rsplit("@", 1)[0]
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    return candidate.lower()


def _clean_name(raw: str, address: str | None) -> str | None:
    name = " ".join(raw.split())
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\").strip()
    if not name or (address is not None and name.lower() == address):
        return None
    return name


# --------------------------------------------------------------------------------------
# The sender's own text: quoted replies, forwards and signatures
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BodyParts:
    """A body split into what the sender wrote (forwards included) and what they quoted."""

    own: str
    quoted: str


_FORWARD_SUBJECT = re.compile(r"^\s*(?:(?:re|aw|sv)\s*:\s*)*(?:fwd?|wg|tr|rv|enc|doorst)\s*:", re.I)
_FORWARD_MARKER = re.compile(
    r"^(?:-{2,}\s*(?:forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado"
    r"|doorgestuurd bericht)\s*-{2,}"
    r"|begin forwarded message\s*:|anfang der weitergeleiteten nachricht\s*:"
    r"|début du message réexpédié\s*:|-{2,}\s*forwarded by .{0,120}-{2,})$",
    re.I,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|mensaje original"
    r"|oorspronkelijk bericht)\s*-{2,}$",
    re.I,
)
# "On <date>, <name> wrote:", "Le <date>, <name> a écrit :", "El <date>, <name> escribió:", and the
# German and Dutch order with the name after the verb: "Am <date> schrieb <name>:".
_ATTRIBUTION = re.compile(
    r"^(?:.{0,300}\b(?:wrote|a écrit|escribió|het volgende geschreven)\s?"
    r"|(?:am|op)\b.{0,150}\b(?:schrieb|schreef)\b.{0,150})\s?:$",
    re.I,
)
_ATTRIBUTION_START = re.compile(r"^(?:on|am|le|el|op)\b", re.I)
_HEADER_FROM = re.compile(r"^(?:from|von|de|van)\s?:\s*\S", re.I)
_HEADER_SENT = re.compile(r"^(?:sent|date|gesendet|datum|envoyé|enviado|fecha|verzonden)\s?:", re.I)
_HEADER_LINE = re.compile(
    r"^(?:from|von|de|van|sent|date|gesendet|datum|envoyé|enviado|fecha|verzonden|to|an|à|a|para|aan"
    r"|cc|bcc|reply-to|antwort an)\s?:",
    re.I,
)
_HEADER_SUBJECT = re.compile(r"^(?:subject|betreff|objet|asunto|onderwerp)\s?:\s?(.*)$", re.I)
_RULE_LINE = re.compile(r"^_{5,}$")
_SIGNATURE_DELIMITER = re.compile(r"^--\s?$")
_SIGN_OFF = re.compile(
    r"^(?:(?:(?:best|kind|warm|warmest|many|with|yours)\s)?(?:regards|wishes)"
    r"|best|cheers|thanks|thank you|thanks in advance|many thanks|thanks again|with thanks|sincerely"
    r"|yours sincerely|yours faithfully|yours truly|respectfully|br|kr|rgds"
    r"|mit freundlichen grüßen|mit freundlichem gruß|mit freundlichen grüssen|freundliche grüße"
    r"|viele grüße|beste grüße|liebe grüße|schöne grüße|mfg|vg|lg|gruß|grüße|danke|vielen dank"
    r"|besten dank|cordialement|bien cordialement|bien à vous|salutations|meilleures salutations"
    r"|sincères salutations|merci|merci d'avance|merci beaucoup|saludos|un saludo|saludos cordiales"
    r"|atentamente|gracias|muchas gracias|cordialmente|un cordial saludo|met vriendelijke groet(?:en)?"
    r"|vriendelijke groet(?:en)?|groeten|mvg|hartelijke groet(?:en)?|bedankt)[\s,.!]{0,3}$",
    re.I,
)
_DEVICE_FOOTER = re.compile(
    r"^(?:sent from my \w+.{0,40}|sent from (?:outlook|mail|yahoo mail).{0,40}|get outlook for .{0,40}"
    r"|von meinem .{0,40}gesendet|envoyé de mon .{0,40}|enviado desde mi .{0,40}"
    r"|verzonden (?:vanaf|met) .{0,40})$",
    re.I,
)
_POSTSCRIPT = re.compile(r"^p\.?\s?p?\.?s\.?\s?[:.-]?\s", re.I)
_MAX_SIGNATURE_LINES = 15  # a sign-off followed by more than this is not a signature block
_QUOTED_FROM_HERE: Final = -1


def own_text(body_text: str, *, subject: str = "") -> str:
    """The sender's own words in a body: no quoted replies, no signature, forwards kept."""
    return split_body(body_text, subject=subject).own


def split_body(body_text: str, *, subject: str = "") -> BodyParts:
    """Split a plain-text body into the sender's own text and the quoted thread.

    * ``>`` lines are quoted; own lines between them (an inline answer) stay own.
    * ``On <date>, <name> wrote:`` (and its German, French, Spanish and Dutch forms) starts the
      quoted thread, unless ``>`` lines follow it: then it only introduces those lines.
    * An Outlook ``From: ... Sent: ...`` block or ``-----Original Message-----`` starts the quoted
      thread, except in a forward (``FW:`` subject), where it starts the forwarded message.
    * ``---------- Forwarded message ---------`` starts content the sender forwards *as* their
      request: it is own text, without its From/Date/To header lines (their dates are transport).
    * A ``--`` line starts a signature; so does a sign-off line (``Kind regards,``) when own text
      came before it and at most a short block follows. A ``P.S.`` line ends the signature.
    """
    lines = body_text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    forwarding = bool(_FORWARD_SUBJECT.match(subject))
    own: list[str] = []
    quoted: list[str] = []
    in_signature = False
    wrote_something = False  # a sign-off only ends something: "Thanks," as an opening is text
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if stripped.startswith(">"):
            quoted.append(line)
            index += 1
            continue
        thread_break = _thread_break(lines, index, forwarding=forwarding, own=own)
        if thread_break == _QUOTED_FROM_HERE:
            quoted.extend(lines[index:])
            break
        if thread_break is not None:
            index, in_signature = thread_break, False
            continue
        index += 1
        if _RULE_LINE.match(stripped) or _DEVICE_FOOTER.match(stripped):
            continue
        if in_signature and not _POSTSCRIPT.match(stripped):
            continue
        in_signature = bool(
            _SIGNATURE_DELIMITER.match(line)
            or (wrote_something and _SIGN_OFF.match(stripped) and _short_tail(lines, index))
        )
        if not in_signature:
            own.append(line)
            wrote_something = wrote_something or bool(stripped)
    return BodyParts(own="\n".join(own).strip(), quoted="\n".join(quoted).strip())


def _thread_break(lines: list[str], index: int, *, forwarding: bool, own: list[str]) -> int | None:
    """Where a line starts another message: the index to go on from, or ``_QUOTED_FROM_HERE``.

    A forwarded message goes on as own text after its header lines; an attribution that only
    introduces ``>`` lines is dropped by itself; a reply header quotes everything after it.
    """
    stripped = lines[index].strip()
    if _FORWARD_MARKER.match(stripped):
        return _skip_header_block(lines, index + 1, own)
    attribution_end = _attribution_end(lines, index)
    if attribution_end is not None:
        return attribution_end if _next_is_quoted(lines, attribution_end) else _QUOTED_FROM_HERE
    if _starts_outlook_header(lines, index):
        if not forwarding:
            return _QUOTED_FROM_HERE
        return _skip_header_block(lines, index + 1 if _ORIGINAL_MESSAGE.match(stripped) else index, own)
    return None


def _attribution_end(lines: list[str], index: int) -> int | None:
    """The index after an ``On ... wrote:`` line (possibly wrapped onto two lines), if one starts here."""
    stripped = lines[index].strip()
    if not stripped or len(stripped) > _MAX_HEADER_LINE:
        return None
    if _ATTRIBUTION.match(stripped):
        return index + 1
    if index + 1 < len(lines) and _ATTRIBUTION_START.match(stripped):
        joined = f"{stripped} {lines[index + 1].strip()}"
        if len(joined) <= _MAX_HEADER_LINE and _ATTRIBUTION.match(joined):
            return index + 2
    return None


def _next_is_quoted(lines: list[str], index: int) -> bool:
    for line in lines[index : index + 3]:
        if line.strip():
            return line.lstrip().startswith(">")
    return False


def _starts_outlook_header(lines: list[str], index: int) -> bool:
    stripped = lines[index].strip()
    if _ORIGINAL_MESSAGE.match(stripped):
        return True
    if not _HEADER_FROM.match(stripped) or len(stripped) > _MAX_HEADER_LINE:
        return False
    return any(_HEADER_SENT.match(line.strip()) for line in lines[index + 1 : index + 5])


def _skip_header_block(lines: list[str], index: int, own: list[str]) -> int:
    """Skip a forwarded message's header lines, keeping its subject (it often names the document)."""
    while index < len(lines):
        stripped = lines[index].strip()
        subject = _HEADER_SUBJECT.match(stripped)
        if subject is not None:
            own.append(subject.group(1))
        elif stripped and not _HEADER_LINE.match(stripped):
            break
        index += 1
    return index


def _short_tail(lines: list[str], index: int) -> bool:
    """Whether what follows a sign-off (up to the quoted thread) is short enough to be a signature."""
    count = 0
    for position in range(index, len(lines)):  # not a slice: no copy of the rest for every sign-off
        stripped = lines[position].strip()
        if stripped.startswith(">") or _FORWARD_MARKER.match(stripped) or _ORIGINAL_MESSAGE.match(stripped):
            return True
        if _POSTSCRIPT.match(stripped):
            return True
        if stripped:
            count += 1
            if count > _MAX_SIGNATURE_LINES:
                return False
    return True


# --------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Amounts
# --------------------------------------------------------------------------------------

_SYMBOLS: Final = {
    "US$": "USD",
    "CA$": "CAD",
    "C$": "CAD",
    "AU$": "AUD",
    "A$": "AUD",
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
}
_CODES: Final = (
    "USD", "EUR", "GBP", "CHF", "CAD", "AUD", "JPY", "CNY", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "INR",
    "MXN", "BRL", "SGD", "HKD", "NZD", "ZAR", "AED", "SAR", "ILS",
)  # fmt: skip
# Lower-case codes only where they are not words of their own ("try", "sek" in Dutch, ...).
_LOWER_CASE_CODES: Final = ("usd", "eur", "gbp", "chf", "cad", "aud")
_MULTIPLIERS: Final = {
    "k": Decimal(1_000),
    "thousand": Decimal(1_000),
    "m": Decimal(1_000_000),
    "mn": Decimal(1_000_000),
    "mio": Decimal(1_000_000),
    "million": Decimal(1_000_000),
    "millions": Decimal(1_000_000),
    "millionen": Decimal(1_000_000),
    "bn": Decimal(1_000_000_000),
    "billion": Decimal(1_000_000_000),
}

_GROUPERS = " \u00a0\u202f\u2009'’"  # thousands only: spaces (plain, no-break, narrow, thin) and apostrophes
_SYMBOL_ALTERNATIVES = "|".join(re.escape(symbol) for symbol in _SYMBOLS)  # longest first, as listed
_CODE_ALTERNATIVES = "|".join([*_CODES, *(f"(?i:{code})" for code in _LOWER_CASE_CODES)])
_CURRENCY = rf"(?:{_SYMBOL_ALTERNATIVES}|(?<![^\W\d_])(?:{_CODE_ALTERNATIVES})(?![^\W\d_]))"
_CURRENCY_WORDS: Final = {"euro": "EUR", "dollar": "USD", "pound": "GBP", "franc": "CHF", "franken": "CHF"}
_CURRENCY_WORD = r"(?i:euros?|(?:us )?dollars?|pounds?(?: sterling)?|(?:swiss )?francs?|franken)"
_CURRENCY_AFTER = rf"(?:{_CURRENCY}|(?<![^\W\d_]){_CURRENCY_WORD}(?![^\W\d_]))"
# Space/apostrophe groups need a 1-3 digit head and at most four 3-digit groups (10^12 is the
# limit anyway); otherwise digits with dots and commas, whose meaning _parse_number decides. An
# amount never starts right after a digit and a separator: "2026 500 EUR" is no amount rather
# than a wrong one, and a long digit run cannot be re-read from each of its groups.
_NUMBER = (
    rf"(?:\d{{1,3}}(?:[{_GROUPERS}]\d{{3}}(?!\d)){{1,4}}(?:[.,]\d{{1,15}})?"
    rf"|\d{{1,15}}(?:[.,]\d{{1,15}}){{0,6}})(?![.,]?\d)"
)
_MULTIPLIER = (
    r"(?:[ \u00a0]?(?P<{name}>(?i:k|mn|mio\.?|m|thousand|millions?|millionen|bn|billion))(?![^\W\d_]))?"
)
_GAP = r"[ \t\u00a0\u202f]{0,2}"
_AMOUNT = re.compile(
    rf"(?P<currency_before>{_CURRENCY}){_GAP}(?P<number_before>{_NUMBER}){_MULTIPLIER.format(name='mult_before')}"
    rf"|(?<!\d)(?<!\d[.,{_GROUPERS}])(?P<number_after>{_NUMBER}){_MULTIPLIER.format(name='mult_after')}"
    rf"{_GAP}(?P<currency_after>{_CURRENCY_AFTER})",
)


@dataclass(frozen=True)
class AmountsFound:
    """Every amount in a text, and the ones the wording gives a role.

    ``mentioned`` are the amounts with a currency; ``stated`` every amount read, with or without a
    currency, each with the role its words give it (what validation completes with the invoice's
    currency when the text names none).
    """

    mentioned: tuple[Money, ...]
    disputed: Money | None
    expected: Money | None
    requested_credit_limit: Money | None
    paid: Money | None = None
    stated: tuple[StatedAmount, ...] = ()


def find_amounts(text: str) -> tuple[Money, ...]:
    """Every amount with a currency symbol or code, in order (repeats kept: they are mentions).

    A bare number is never an amount. Separators: with both ``,`` and ``.`` the last one is the
    decimal separator; a single one followed by exactly three digits groups thousands (``1.250
    EUR`` is 1250) unless the integer part is ``0``; followed by other digit counts it is the
    decimal separator (``12,50 EUR``); repeated, it groups thousands. Spaces (also no-break and
    narrow no-break) and apostrophes only group thousands, so with them a single ``,`` or ``.``
    is the decimal separator. ``k``/``m``/``million``/``Mio`` multiply. Anything
    :class:`~shared.money.Money` refuses (over 4 decimals, 10^12 or more) is skipped.
    """
    return tuple(found.money for found in _amount_matches(text) if found.money is not None)


@dataclass(frozen=True)
class _AmountSpan:
    """An amount read at ``start:end``: with its currency (``money``) or a bare figure."""

    value: Decimal
    money: Money | None
    start: int
    end: int


def _amount_matches(text: str) -> list[_AmountSpan]:
    """Amounts with a currency (symbol, code or word, figures or simple English words), in order."""
    found = _currency_amounts(text) + _word_amounts(text)
    return sorted(found, key=lambda span: span.start)


def _currency_amounts(text: str) -> list[_AmountSpan]:
    found: list[_AmountSpan] = []
    for match in _AMOUNT.finditer(text):
        before = match.group("currency_before") is not None
        raw = match.group("number_before") if before else match.group("number_after")
        multiplier = match.group("mult_before") if before else match.group("mult_after")
        symbol = match.group("currency_before") if before else match.group("currency_after")
        value = _parse_number(raw)
        if value is None:
            continue
        if multiplier:
            value *= _MULTIPLIERS[multiplier.lower().rstrip(".")]
        money = _money(value, _currency_code(symbol))
        if money is not None:
            found.append(_AmountSpan(money.amount, money, match.start(), match.end()))
    return found


def _currency_code(symbol: str) -> str:
    """The ISO code of a symbol, code or currency word (a dollar is USD, a franc CHF: the
    currencies our customers use; a Canadian writes CA$)."""
    if symbol in _SYMBOLS:
        return _SYMBOLS[symbol]
    upper = symbol.upper()
    for word, code in _CURRENCY_WORDS.items():
        if word.upper() in upper:
            return code
    return upper


def _money(value: Decimal, currency: str) -> Money | None:
    try:
        return Money(amount=format(value, "f"), currency=currency)
    except ValidationError:
        return None


def _parse_number(raw: str) -> Decimal | None:
    """A written number as a Decimal, by the separator rules of :func:`find_amounts`."""
    grouped_by_space = any(char in _GROUPERS for char in raw)
    marks = [(position, char) for position, char in enumerate(raw) if char in ".,"]
    decimal_at: int | None = None
    if {char for _, char in marks} == {".", ","}:
        decimal_at = marks[-1][0]
    elif len(marks) == 1:
        position = marks[0][0]
        head = raw[:position]
        digits_after = len(raw) - position - 1
        if grouped_by_space or digits_after != 3 or head.strip(_GROUPERS) == "0":
            decimal_at = position
    integer_part = raw if decimal_at is None else raw[:decimal_at]
    fraction = "" if decimal_at is None else raw[decimal_at + 1 :]
    if any(char in ".," for char in fraction):
        return None
    if not _valid_grouping(integer_part):
        return None
    digits = "".join(char for char in integer_part if char.isdigit())
    try:
        return Decimal(f"{digits}.{fraction}" if fraction else digits)
    except InvalidOperation:
        return None


def _valid_grouping(integer_part: str) -> bool:
    """Thousands groups: one kind of separator, a 1-3 digit head, then groups of exactly three."""
    groups = re.split(rf"[.,{_GROUPERS}]", integer_part)
    if len(groups) == 1:
        return bool(groups[0])
    separators = {char if char not in _GROUPERS else "space" for char in integer_part if not char.isdigit()}
    return len(separators) == 1 and 1 <= len(groups[0]) <= 3 and all(len(group) == 3 for group in groups[1:])


def _any_of(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


class _Role(Enum):
    DISPUTED = "disputed"
    EXPECTED = "expected"
    PAID = "paid"


# Words right in front of an amount (in the same clause, after any earlier amount) that say what
# the amount is. The last cue before the amount wins: "we were charged X but should be Y".
_ROLE_CUES: Final = (
    (
        _Role.DISPUTED,
        _any_of(
            r"over-?charged",
            r"over-?billed",
            r"over-?invoiced",
            r"charged (?:us )?too much",
            r"difference (?:of|is|was|:)",
            r"difference amounts to",
            r"price difference",
            r"discrepancy (?:of|is|:)",
            r"disputed (?:amount|sum|charge)",
            r"amount (?:in|under) dispute",
            r"(?:we|i) (?:dispute|contest|are disputing|are contesting|reject)",
            r"dispute (?:the|this|of|over)",
            r"\brefund(?:ed)?\b",
            r"zu viel berechnet",
            r"differenz",
            r"strittige[rn]? betrag",
            r"écart de",
            r"trop facturé",
            r"diferencia de",
            r"cobrado de más",
            r"verschil van",
        ),
    ),
    (
        _Role.EXPECTED,
        _any_of(
            r"should (?:only )?(?:be|have been|amount to|read|total|come to)",
            r"agreed (?:price|amount|total|fee)",
            r"contract(?:ual|ed)? (?:price|amount|total)",
            r"price (?:in|under|according to) (?:the|our) contract",
            r"expected (?:amount|total|price|invoice amount)",
            r"(?:we|i) expected",
            r"correct (?:amount|total|price|invoice amount) (?:is|was|would be|of)",
            r"\bsollte\b",
            r"vereinbarte[rn]? (?:preis|betrag|summe)",
            r"vertragspreis",
            r"richtige[rn]? betrag",
            r"devrait être",
            r"prix convenu",
            r"montant correct",
            r"debería ser",
            r"precio acordado",
            r"importe correcto",
            r"zou moeten zijn",
            r"afgesproken prijs",
        ),
    ),
    (
        _Role.PAID,
        _any_of(
            r"\b(?:we|i) (?:have |had |already |just ){0,3}(?:paid|transferred|remitted|wired|sent)\b",
            r"\b(?:has|have|was|were) (?:already )?(?:been )?(?:paid|transferred|remitted|wired)\b",
            r"\bpaid(?: in full)?\b",
            r"\bpayment of\b",
            r"\bamount paid\b",
            r"\bbezahlt\b|\büberwiesen\b|\bgezahlt\b",
            r"\bpayé\b|\bréglé\b|\bversé\b|\bvirement de\b",
            r"\bpagamos\b|\bpagado\b|\btransferimos\b",
            r"\bbetaald\b|\bovergemaakt\b",
        ),
    ),
)

# A unit price is never the invoice's expected total: resolution would credit total minus it.
_UNIT_PRICE_BEFORE = _any_of(
    "unit price", "price per", "per unit", "hourly rate", "rate per", "stückpreis", "einzelpreis",
    "prix unitaire", "precio unitario",
)  # fmt: skip
_UNIT_PRICE_AFTER = re.compile(
    r"^\s{0,2}(?:/\s?\w|per\b|each\b|pro\b|par\b|por\b|je\b|a (?:piece|unit)\b|an hour\b"
    r"|the (?:unit|piece)\b)",
    re.IGNORECASE,
)
_CREDIT_LIMIT_TOPIC = _any_of(
    r"credit[ -]?limit", r"credit line", r"\blimit\b", r"kreditlimit", r"kreditrahmen", r"limite de crédit",
    r"límite de crédito", r"kredietlimiet", r"\blimite\b", r"\blímite\b",
)  # fmt: skip
_REQUESTED_LIMIT_STRONG = re.compile(
    r"(?:\b(?:to|auf|à|hasta|naar|tot|up to)\s?:?|(?:new|requested|desired|neues?|neuen|nouvelle|nuevo)"
    r" (?:credit )?(?:limit|limite|límite|kreditlimit)\w*(?: of| von| de| to| is)?\s?:?)\s*$",
    re.IGNORECASE,
)
_REQUESTED_LIMIT_WEAK = re.compile(r"(?:limit|limite|límite|kreditlimit)\w* (?:of|von|de)\s?:?\s*$", re.I)
_CURRENT_LIMIT = _any_of(
    "current", "existing", "present", "actual", "aktuell", "derzeit", "actuel", r"\bfrom\s*$", r"\bvon\s*$"
)
_CLAUSE_BREAK = re.compile(r"[!?;\n]|\.(?=\s)")
_CONTEXT = 200


def find_amounts_with_roles(text: str) -> AmountsFound:
    """Every amount, plus the disputed, expected, paid and requested-limit ones where the words say so.

    ``disputed``: the first amount behind "overcharged by", "difference of", "disputed amount",
    "we dispute ...", "refund of". ``expected``: behind "should be", "agreed price", "contract
    price", "expected amount". ``paid``: behind "we paid", "transferred", "payment of",
    "überwiesen". Unit prices ("per unit", "/pc", "unit price") get no role.
    ``requested_credit_limit``: in a sentence about a credit limit, the amount behind "to" or "new
    limit" (preferred) or "limit of", never the "current" or "from" one.

    Amounts without a currency are read too, into ``stated`` only: a figure with two decimals
    (``18,500.00``, ``18.500,00``) anywhere, a whole number (``700``) only right behind a cue
    ("overcharged by 700", "we paid 18500"). Their currency is the invoice's, which only
    validation knows.
    """
    with_currency = _amount_matches(text)
    spans = sorted(with_currency + _bare_amounts(text, with_currency), key=lambda span: span.start)
    roles: dict[_Role, Money] = {}
    stated: list[StatedAmount] = []
    strong_limit: Money | None = None
    weak_limit: Money | None = None
    previous_end = 0
    for span in spans:
        start = span.start
        window = text[max(0, start - _CONTEXT) : start]
        breaks = list(_CLAUSE_BREAK.finditer(window))
        clause_start = start - len(window) + (breaks[-1].end() if breaks else 0)
        segment = text[max(previous_end, clause_start) : start]
        cue = _last_cue(segment)
        role = cue[0] if cue is not None else None
        if span.money is None and _DATE_PREPOSITION.search(segment):
            continue  # "paid on 18.09": a date without its year, not an amount
        previous_end = span.end
        after = text[span.end : span.end + 20]
        if _UNIT_PRICE_BEFORE.search(segment) or _UNIT_PRICE_AFTER.match(after):
            continue
        if span.money is not None and role is not None:
            roles.setdefault(role, span.money)
        stated.append(
            StatedAmount(
                amount=span.value,
                currency=span.money.currency if span.money else None,
                role=role.value if role is not None else None,
            )
        )
        if span.money is None:
            continue
        paragraph = window.rsplit("\n\n", 1)[-1]
        if _CREDIT_LIMIT_TOPIC.search(paragraph) and not _CURRENT_LIMIT.search(segment):
            if strong_limit is None and _REQUESTED_LIMIT_STRONG.search(segment):
                strong_limit = span.money
            elif weak_limit is None and _REQUESTED_LIMIT_WEAK.search(segment):
                weak_limit = span.money
    return AmountsFound(
        mentioned=tuple(span.money for span in with_currency if span.money is not None),
        disputed=roles.get(_Role.DISPUTED),
        expected=roles.get(_Role.EXPECTED),
        requested_credit_limit=strong_limit or weak_limit,
        paid=roles.get(_Role.PAID),
        stated=_first_stated(stated),
    )


MAX_STATED_AMOUNTS: Final = 50
"""At most this many stated amounts are kept (``RequestDetails.stated_amounts`` holds no more)."""


def _first_stated(stated: list[StatedAmount]) -> tuple[StatedAmount, ...]:
    """The stated amounts a request can carry: those with a role first, then the others, in order."""
    if len(stated) <= MAX_STATED_AMOUNTS:
        return tuple(stated)
    with_role = [index for index, amount in enumerate(stated) if amount.role is not None]
    others = [index for index, amount in enumerate(stated) if amount.role is None]
    kept = sorted((with_role + others)[:MAX_STATED_AMOUNTS])
    return tuple(stated[index] for index in kept)


def _last_cue(segment: str) -> tuple[_Role, int] | None:
    """The role of the last cue in ``segment``, and where that cue ends."""
    best: tuple[int, _Role, int] | None = None
    for role, cue in _ROLE_CUES:
        for match in cue.finditer(segment):
            if best is None or match.start() > best[0]:
                best = (match.start(), role, match.end())
    return (best[1], best[2]) if best else None


# What may stand between a cue and a whole number for the number to be the cue's amount.
_CUE_TO_FIGURE = re.compile(
    r"^\s{0,3}(?:(?:by|of|was|is|were|about|approx\.?|around|only|roughly|exactly|the amount of"
    r"|an amount of|a total of|total of|in total|um|von|de|du|en|:|=)\s{0,3}){0,3}$",
    re.IGNORECASE,
)
_DATE_PREPOSITION = re.compile(
    r"\b(?:on|am|le|el|vom|dated|since|until|bis|du|au|from)\s{1,3}$", re.IGNORECASE
)
# Figures with two decimals and no currency: "18,500.00", "18.500,00", "18'500.00", "700.00". No
# space grouping: "in 3 200.00" may be two numbers. A date's "28.09.2026" is excluded by what follows.
_BARE_DECIMAL = re.compile(
    r"(?<![\w.,'’/+#-])(?P<number>\d{1,3}(?:[,.'’\u00a0]\d{3}){1,4}[.,]\d{2}|\d{1,12}[.,]\d{2})"
    r"(?![\w%]|[.,/:-]?\d)"
)
_BARE_INTEGER = re.compile(
    r"(?<![\w.,'’/+#-])(?P<number>\d{1,3}(?:[,.'’]\d{3}){1,4}|\d{1,12})(?![\w%]|[.,/:-]?\d)"
)


def _bare_amounts(text: str, taken: list[_AmountSpan]) -> list[_AmountSpan]:
    """Figures without a currency that are not part of an amount with one."""
    occupied = bytearray(len(text))  # positions already part of an amount: a linear check
    for span in taken:
        occupied[span.start : span.end] = b"\x01" * (span.end - span.start)
    found: list[_AmountSpan] = []
    for pattern, bare_integer in ((_BARE_DECIMAL, False), (_BARE_INTEGER, True)):
        for match in pattern.finditer(text):
            start, end = match.span("number")
            if any(occupied[start:end]):
                continue
            if bare_integer and (not _right_behind_a_cue(text, start) or _COUNTED.match(text, end)):
                continue  # a whole number is an amount only right behind words that say so
            value = _parse_number(match.group("number"))
            if value is None or _money(value, "XXX") is None:
                continue
            found.append(_AmountSpan(value, None, start, end))
            occupied[start:end] = b"\x01" * (end - start)
    return found


def _right_behind_a_cue(text: str, start: int) -> bool:
    before = text[max(0, start - _CUE_REACH) : start]
    if not _ENDS_IN_WORDS.search(before):
        return False  # digits, symbols or nothing in front: no cue can be there (and this is cheap)
    cue = _last_cue(before)
    return cue is not None and bool(_CUE_TO_FIGURE.match(before[cue[1] :]))


_CUE_REACH = 60
# "we paid 3 invoices", "paid 2 times": a count, not an amount.
_COUNTED = re.compile(
    r"\s{0,2}(?:invoices?|payments?|times|days?|weeks?|months?|years?|items?|units?|pieces?|pcs|parts?"
    r"|instal(?:l)?ments?|transfers?|rechnungen|zahlungen|mal|tage|fois|factures|veces|facturas)(?![^\W\d_])",
    re.IGNORECASE,
)
_ENDS_IN_WORDS = re.compile(r"[^\W\d_]\s{0,3}[:=]?\s{0,3}$")


# Simple English number words before a currency word: "eighteen thousand five hundred dollars".
_UNIT_WORDS: Final = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
)
_UNITS: Final = {word: value for value, word in enumerate(_UNIT_WORDS.split())}
_TENS: Final = {
    word: value * 10
    for value, word in enumerate(
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], start=2
    )
}
_SCALES: Final = {"hundred": 100, "thousand": 1_000, "million": 1_000_000}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES, "a", "and"], key=len, reverse=True))
_WORD_AMOUNT = re.compile(
    rf"(?<![^\W\d_])(?P<words>(?:(?:{_NUMBER_WORD})(?:\s|-)){{1,14}})"
    rf"(?P<currency>{_CURRENCY_WORD}|{_CODE_ALTERNATIVES})(?![^\W\d_])",
    re.IGNORECASE,
)


def _word_amounts(text: str) -> list[_AmountSpan]:
    found: list[_AmountSpan] = []
    for match in _WORD_AMOUNT.finditer(text):
        words = re.split(r"[\s-]+", match.group("words").lower().strip())
        while words and words[0] in ("a", "and"):
            if words[0] == "a" and len(words) > 1 and words[1] in _SCALES:
                break  # "a hundred": one hundred
            words.pop(0)
        value = _number_of_words(words)
        money = None if value is None else _money(Decimal(value), _currency_code(match.group("currency")))
        if money is not None:
            start = match.start("words") + (len(match.group("words")) - len(match.group("words").lstrip()))
            found.append(_AmountSpan(money.amount, money, start, match.end()))
    return found


def _number_of_words(words: list[str]) -> int | None:
    """The value of number words ("eighteen thousand five hundred"), or None if they make none."""
    total, current, seen = 0, 0, False
    for word in words:
        if word == "and":
            continue
        if word == "a":
            current = max(current, 1)
        elif word in _UNITS:
            current += _UNITS[word]
            seen = True
        elif word in _TENS:
            current += _TENS[word]
            seen = True
        elif word == "hundred":
            current = max(current, 1) * 100
            seen = True
        else:
            scale = _SCALES[word]
            total += max(current, 1) * scale
            current = 0
            seen = True
    return total + current if seen else None


# --------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------

_MONTHS: Final = {
    **dict.fromkeys(("january", "jan", "januar", "jänner", "janvier", "janv", "enero", "januari"), 1),
    **dict.fromkeys(("february", "feb", "februar", "février", "fevrier", "févr", "febrero", "februari"), 2),
    **dict.fromkeys(("march", "mar", "märz", "mrz", "mars", "marzo", "maart"), 3),
    **dict.fromkeys(("april", "apr", "avril", "avr", "abril"), 4),
    **dict.fromkeys(("may", "mai", "mayo", "mei"), 5),
    **dict.fromkeys(("june", "jun", "juni", "juin", "junio"), 6),
    **dict.fromkeys(("july", "jul", "juli", "juillet", "juil", "julio"), 7),
    **dict.fromkeys(("august", "aug", "août", "aout", "agosto", "augustus"), 8),
    **dict.fromkeys(("september", "sep", "sept", "septembre", "septiembre", "setiembre"), 9),
    **dict.fromkeys(("october", "oct", "oktober", "okt", "octobre", "octubre"), 10),
    **dict.fromkeys(("november", "nov", "novembre", "noviembre"), 11),
    **dict.fromkeys(("december", "dec", "dezember", "dez", "décembre", "decembre", "déc", "diciembre"), 12),
}
_MONTH_NAME = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE = re.compile(
    # 2026-11-02, 2026/11/02, 2026.11.02: year first is never ambiguous
    r"(?<![\d.,/-])(?P<iso_year>(?:19|20)\d\d)(?P<iso_sep>[-/.])(?P<iso_month>\d{1,2})(?P=iso_sep)"
    r"(?P<iso_day>\d{1,2})(?![\d])"
    # 02.11.2026 (day first, always), 2/11/2026 and 2-11-2026 (day first unless only m/d is valid)
    r"|(?<![\d.,/-])(?P<num_first>\d{1,2})(?P<num_sep>[./-])(?P<num_second>\d{1,2})(?P=num_sep)"
    r"(?P<num_year>(?:19|20)\d\d)(?![\d])"
    # 2 November 2026, 2nd of Nov. 2026, 2. November 2026, 2 de noviembre de 2026, 2-Nov-2026
    rf"|(?<![\w.])(?P<dm_day>\d{{1,2}})(?:st|nd|rd|th|er|º)?\.?(?:[ \-]|\s?of\s|\sde\s)?"
    rf"(?P<dm_month>{_MONTH_NAME})(?![^\W\d_])\.?,?(?:[ \-]|\sde\s)(?P<dm_year>(?:19|20)\d\d)(?!\d)"
    # Nov 2, 2026, November 2nd 2026
    rf"|(?<![^\W\d_])(?P<md_month>{_MONTH_NAME})\.?\s(?P<md_day>\d{{1,2}})(?:st|nd|rd|th)?,?\s"
    r"(?P<md_year>(?:19|20)\d\d)(?!\d)",
    re.IGNORECASE,
)


def find_dates(text: str, *, today: date | None = None) -> tuple[date, ...]:
    """Every valid calendar date in the text, in order of first appearance, without repeats.

    Year-first dates (``2026-11-02``) and month names in English, German, French, Spanish and
    Dutch are unambiguous. ``02.11.2026`` is day.month.year. A date with ``/`` or ``-`` and the
    year last is read day first (``2/11/2026`` is 2 November), as most of our customers and all
    our European ones write it; only when that is impossible and month-first is valid
    (``11/25/2026``) is it read the US way. Two-digit years are not taken (``02.11.26`` could be
    anything), nor dates that do not exist (``31.02.2026``).

    Given ``today`` (the day the request was received), also a day and month name without a year
    (``28 Sep``, ``September 28th``: the nearest such day to ``today``) and days said relative to
    it (``yesterday``, ``last Friday``, ``3 days ago``, ``gestern``, ``letzten Freitag``).
    """
    return tuple(dict.fromkeys(found.day for found in _date_spans(text, today=today)))


@dataclass(frozen=True)
class _DateSpan:
    day: date
    start: int
    end: int
    inferred_year: bool = False


_WEEKDAYS: Final = {
    **dict.fromkeys(("monday", "montag", "lundi", "lunes", "maandag"), 0),
    **dict.fromkeys(("tuesday", "dienstag", "mardi", "martes", "dinsdag"), 1),
    **dict.fromkeys(("wednesday", "mittwoch", "mercredi", "miércoles", "miercoles", "woensdag"), 2),
    **dict.fromkeys(("thursday", "donnerstag", "jeudi", "jueves", "donderdag"), 3),
    **dict.fromkeys(("friday", "freitag", "vendredi", "viernes", "vrijdag"), 4),
    **dict.fromkeys(("saturday", "samstag", "samedi", "sábado", "sabado", "zaterdag"), 5),
    **dict.fromkeys(("sunday", "sonntag", "dimanche", "domingo", "zondag"), 6),
}
_WEEKDAY_NAME = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_SMALL_NUMBERS: Final = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "a couple of": 2, "a few": 3,
}  # fmt: skip
_RELATIVE_DATE = re.compile(
    r"(?<![^\W\d_])(?:(?P<before_yesterday>the day before yesterday|vorgestern)"
    r"|(?P<yesterday>yesterday|gestern|ayer|gisteren)"
    r"|(?P<today>today|heute|aujourd'hui|hoy|vandaag)"
    rf"|(?:last|letzten|letzte[nm]?|vergangenen|past)\s(?P<last_weekday>{_WEEKDAY_NAME})"
    rf"|(?P<weekday_last>{_WEEKDAY_NAME})\s(?:dernier|pasado)"
    r"|(?P<days>\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|a couple of|a few)\s(?:days?\sago)"
    r"|vor\s(?P<tage>\d{1,2})\stagen)(?![^\W\d_])",
    re.IGNORECASE,
)
# A day and a month name without a year ("28 Sep", "28th of September", "Sep 28", "September
# 28th"). "May" only capitalised: "we may 2 ..." is not a date.
_MONTH_NAME_NO_MAY = "|".join(name for name in sorted(_MONTHS, key=len, reverse=True) if name != "may")
_YEARLESS_DATE = re.compile(
    rf"(?<![\w.])(?P<dm_day>\d{{1,2}})(?:st|nd|rd|th|er|º)?\.?(?:[ \-]|\s?of\s|\sde\s)?"
    rf"(?P<dm_month>{_MONTH_NAME_NO_MAY}|(?-i:May))(?![^\W\d_])\.?"
    rf"|(?<![^\W\d_])(?P<md_month>{_MONTH_NAME_NO_MAY}|(?-i:May))\.?\s(?P<md_day>\d{{1,2}})"
    r"(?:st|nd|rd|th)?(?![\d.,:]\d|\d)",
    re.IGNORECASE,
)


def _date_spans(text: str, *, today: date | None) -> list[_DateSpan]:
    """Dates with where they stand; yearless and relative ones only when ``today`` is given."""
    spans = [
        _DateSpan(parsed, match.start(), match.end())
        for match in _DATE.finditer(text)
        if (parsed := _date_of(match)) is not None
    ]
    if today is None:
        return spans
    taken = [(span.start, span.end) for span in spans]
    for match in _YEARLESS_DATE.finditer(text):
        if any(match.start() < end and start < match.end() for start, end in taken):
            continue
        month_name = (match.group("dm_month") or match.group("md_month")).lower()
        day = int(match.group("dm_day") or match.group("md_day"))
        nearest = _nearest_day(_MONTHS[month_name.rstrip(".")], day, today)
        if nearest is not None:
            spans.append(_DateSpan(nearest, match.start(), match.end(), inferred_year=True))
    for match in _RELATIVE_DATE.finditer(text):
        relative = _relative_day(match, today)
        if relative is not None:
            spans.append(_DateSpan(relative, match.start(), match.end()))
    return sorted(spans, key=lambda span: span.start)


def _nearest_day(month: int, day: int, today: date) -> date | None:
    """The date with this month and day nearest to ``today`` (last year, this year or next)."""
    options = [
        d
        for year in (today.year - 1, today.year, today.year + 1)
        if (d := _valid_date(str(year), str(month), str(day)))
    ]
    return min(options, key=lambda option: abs((option - today).days), default=None)


def _relative_day(match: re.Match[str], today: date) -> date | None:
    if match.group("before_yesterday"):
        return today - timedelta(days=2)
    if match.group("yesterday"):
        return today - timedelta(days=1)
    if match.group("today"):
        return today
    weekday_name = match.group("last_weekday") or match.group("weekday_last")
    if weekday_name:
        back = (today.weekday() - _WEEKDAYS[weekday_name.lower()]) % 7 or 7
        return today - timedelta(days=back)
    count = match.group("days") or match.group("tage")
    number = int(count) if count.isdigit() else _SMALL_NUMBERS[count.lower()]
    return today - timedelta(days=number)


def _date_of(match: re.Match[str]) -> date | None:
    if match.group("iso_year"):
        return _valid_date(match.group("iso_year"), match.group("iso_month"), match.group("iso_day"))
    if match.group("num_year"):
        first, second, year = match.group("num_first"), match.group("num_second"), match.group("num_year")
        day_first = _valid_date(year, second, first)
        if day_first is not None or match.group("num_sep") == ".":
            return day_first
        return _valid_date(year, first, second)
    if match.group("dm_year"):
        month = _MONTHS[match.group("dm_month").lower()]
        return _valid_date(match.group("dm_year"), str(month), match.group("dm_day"))
    month = _MONTHS[match.group("md_month").lower()]
    return _valid_date(match.group("md_year"), str(month), match.group("md_day"))


def _valid_date(year: str, month: str, day: str) -> date | None:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


_PAYMENT_DATE_CUE = _any_of(
    r"\b(?:payment|value|transfer|remittance) date\b",
    r"\bdate of (?:the )?payment\b",
    r"\bvaluta\b",
    r"\bzahlungsdatum\b",
    r"\bdate de (?:paiement|valeur)\b",
    r"\bfecha (?:de pago|valor)\b",
    r"\bbetaaldatum\b",
)
_NOT_A_PAYMENT_DATE = re.compile(
    r"\b(?:due|dated|issued|invoice date|fällig|vom|datiert|échéance|daté|vencimiento|vence|vervaldatum)"
    r"\b[^.!?;\n]{0,12}$",
    re.IGNORECASE,
)
_PAID_CUES = next(cue for role, cue in _ROLE_CUES if role is _Role.PAID)


def find_payment_date(text: str, *, today: date | None = None) -> date | None:
    """The day the customer says they paid: the first date in a clause that says they paid.

    "We paid 18,500.00 on 28 Sep", "On 28.09.2026 we transferred ...", "value date 2026-09-28".
    A date the words call due, issued or dated is not it, nor a day after ``today``; a date written
    without its year is the last such day up to ``today``.
    """
    for span in _date_spans(text, today=today):
        clause = _clause_around(text, span.start, span.end)
        if not (_PAID_CUES.search(clause) or _PAYMENT_DATE_CUE.search(clause)):
            continue
        if _NOT_A_PAYMENT_DATE.search(text[max(0, span.start - 40) : span.start]):
            continue
        day = span.day
        if today is not None and day > today and span.inferred_year:
            day = _valid_date(str(day.year - 1), str(day.month), str(day.day)) or day
        if today is not None and day > today + timedelta(days=1):
            continue  # not yet: a promise, not a payment
        return day
    return None


def _clause_around(text: str, start: int, end: int) -> str:
    window_start = max(0, start - _CONTEXT)
    breaks = list(_CLAUSE_BREAK.finditer(text, window_start, start))
    clause_start = breaks[-1].end() if breaks else window_start
    following = _CLAUSE_BREAK.search(text, end, min(len(text), end + _CONTEXT))
    return text[clause_start : following.start() if following else min(len(text), end + _CONTEXT)]


@dataclass(frozen=True)
class TextFacts:
    """What a customer's own words name: document candidates, amounts with roles, dates."""

    invoice_candidates: tuple[str, ...]
    payment_candidates: tuple[str, ...]
    loose_candidates: tuple[str, ...]
    amounts: AmountsFound
    dates: tuple[date, ...]
    payment_date: date | None


def understand_text(text: str, *, today: date | None = None) -> TextFacts:
    """Read free text (a CRM description, an email's own words) for what validation resolves.

    Candidates are numbers after an invoice or payment word or code, and numbers that stand alone
    and can hardly be anything else (:mod:`shared.document_numbers`); amounts with and without a
    currency, with their roles; dates, relative ones read from ``today``; the payment date.
    """
    invoices = find_document_numbers(text, "invoice")
    payments = find_document_numbers(text, "payment")
    named = (*invoices, *payments)
    loose = tuple(
        number for number in find_loose_numbers(text) if not any(number in worded for worded in named)
    )
    return TextFacts(
        invoice_candidates=invoices,
        payment_candidates=payments,
        loose_candidates=loose,
        amounts=find_amounts_with_roles(text),
        dates=find_dates(text, today=today),
        payment_date=find_payment_date(text, today=today),
    )


# --------------------------------------------------------------------------------------
# The type of request
# --------------------------------------------------------------------------------------


class _Needs(Enum):
    """A rule that only counts when the text also names documents of this kind."""

    INVOICE = "invoice"
    PAYMENT = "payment"
    CONTRACT = "contract"


@dataclass(frozen=True)
class Rule:
    """Words (or documents) that point to a request type, with how strongly they do.

    Weights: 3 a phrase that on its own says the type ("credit limit", "overcharged"), 2 a strong
    hint, 1 a word that only tips a balance. A rule counts once however often it matches.
    """

    request_type: RequestType
    weight: float
    pattern: re.Pattern[str] | None
    needs: _Needs | None = None


def _words(request_type: RequestType, weight: float, *alternatives: str, needs: _Needs | None = None) -> Rule:
    return Rule(request_type, weight, re.compile("|".join(alternatives), re.IGNORECASE), needs)


_T = RequestType
# The text is matched with its whitespace collapsed to single spaces, so a space here is a space.
RULES: Final[tuple[Rule, ...]] = (
    # billing_dispute: the customer contests what was charged
    _words(
        _T.BILLING_DISPUTE,
        3,
        r"\bover-?(?:charg|bill|invoic)\w*",
        r"\btrop factur\w*",
        r"\bsurfactur\w*",
        r"\bsobrefactur\w*",
        r"\bcobrado de más\b",
        r"\bzu viel berechnet\b",
        r"\bzu hoch berechnet\b",
        r"\bte veel (?:berekend|gefactureerd)\b",
    ),
    _words(
        _T.BILLING_DISPUTE,
        3,
        r"\bdisput\w*",
        r"\bwe (?:contest|reject)\b",
        r"\bwiderspr\w*",
        r"\breklam\w*",
        r"\bcontest(?:ons|er|ation)\b",
        r"\breclam(?:ación|acion|amos)\b",
        r"\bbetwist\w*",
    ),
    _words(
        _T.BILLING_DISPUTE,
        3,
        r"\b(?:wrong|incorrect|higher|excessive) (?:unit )?(?:price|amount|rate|total|charge|quantity)s?\b",
        r"\b(?:price|amount|total|rate|charge|quantity)s? (?:is|are|was|were|seems?|looks?)"
        r" (?:wrong|incorrect|too high)\b",
        r"\b(?:preis|betrag|menge)\b(?: \S+){0,4} (?:ist|sind|war) (?:falsch|zu hoch)\b",
        r"\bfalsche[rn]? (?:preis|betrag|menge)\b",
        r"\b(?:prix|montant) (?:\S+ ){0,3}(?:est |sont )?(?:incorrect|erroné|faux)",
        r"\b(?:precio|importe) (?:\S+ ){0,2}incorrecto",
    ),
    _words(
        _T.BILLING_DISPUTE,
        3,
        r"\b(?:billed|charged|invoiced) (?:us )?twice\b",
        r"\bdouble[- ]?(?:charged|billed)",
    ),
    _words(
        _T.BILLING_DISPUTE,
        3,
        r"\bdo(?:es)?(?: not|n't) match (?:our|the) (?:contract|agreed|quote|quotation|order|po)\b",
        r"\bnot (?:the|what we) agreed\b",
        r"\bnever agreed\b",
        r"\b(?:higher|more) than (?:agreed|quoted|the quote|in the contract)\b",
    ),
    # Words that compare what was charged with what should have been: a dispute's vocabulary.
    _words(
        _T.BILLING_DISPUTE,
        2,
        r"\b(?:agreed|contract|contractual|quoted) (?:price|rate|amount|total)\b",
        r"\bas agreed\b",
        r"\baccording to (?:the|our) (?:contract|quote)\b",
        r"\blaut vertrag\b",
        r"\bvereinbarte[rn]? (?:preis|betrag)\b",
        r"\bvertragspreis\b",
        r"\bprix convenu\b",
        r"\bprecio acordado\b",
        r"\bafgesproken prijs\b",
        r"\b(?:amount|total|price|importe|montant|betrag|rechnung) (?:should|debería|devrait|sollte)\b",
        r"\bprice difference\b",
        r"\b(?:the )?difference (?:of|is|between)\b",
        r"\bdiscrepanc\w*",
        r"\bpreisdifferenz\b",
    ),
    _words(
        _T.BILLING_DISPUTE,
        2,
        r"\bnever (?:ordered|received the (?:goods|items|delivery|service))\b",
        r"\b(?:goods|items|services?|delivery) (?:were |was )?(?:not|never) (?:delivered|received|ordered)\b",
    ),
    # invoice_correction: the invoice's data is wrong (not its price), or it must be reissued
    _words(
        _T.INVOICE_CORRECTION,
        3,
        r"\b(?:wrong|incorrect|missing|old) (?:billing |invoice )?(?:address|po|purchase order"
        r"|vat (?:number|id)|company name|entity|legal entity|reference|order number)\b",
        r"\b(?:address|po number|purchase order number|vat (?:number|id)|company name) (?:\S+ ){0,2}"
        r"(?:is|are|was) (?:missing|wrong|incorrect)\b",
        r"\bre-?issue\w*",
        r"\bfalsche (?:adresse|anschrift|bestellnummer)\b",
        r"\bmauvaise adresse\b",
        r"\bdirección incorrecta\b",
    ),
    _words(
        _T.INVOICE_CORRECTION,
        2,
        r"\bcorrect(?:ed|ion of)? (?:the |our |this |that )?invoice\b",
        r"\binvoice (?:correction|amendment)\b",
        r"\bamend(?:ed)? (?:the )?invoice\b",
        r"\brechnungskorrektur\b",
        r"\bkorrigier\w*",
        r"\bberichtig\w*",
        r"\bcorrig\w*",
        r"\bfactura rectificativa\b",
        r"\bfacture rectificative\b",
        r"\bpo number\b",
        r"\bpurchase order number\b",
        r"\bbestellnummer\b",
        r"\bnuméro de commande\b",
        r"\bnúmero de pedido\b",
    ),
    # payment_query: money was sent and is not where it should be
    _words(
        _T.PAYMENT_QUERY,
        1.5,
        r"\b(?:we|i) (?:have |had )?(?:already )?paid\b",
        r"\b(?:has|have|was|were) (?:already )?been paid\b",
        r"\balready paid\b",
        r"\bbezahlt\b",
        r"\büberwiesen\b",
        r"\bpayé\b",
        r"\bréglé\b",
        r"\bpagad[oa]s?\b",
        r"\bpagamos\b",
        r"\bbetaald\b",
    ),
    _words(
        _T.PAYMENT_QUERY,
        3,
        r"\bpayment (?:was |has |is )?(?:not|never|still not) (?:been )?(?:applied|posted|allocated|received"
        r"|reflected|booked)",
        r"\bunapplied\b",
        r"\bnot (?:yet )?(?:been )?(?:applied|allocated|posted)\b",
        r"\bstill (?:shown|showing|shows|listed|open|outstanding|unpaid)\b",
        r"\b(?:shows?|shown|listed) as (?:open|outstanding|unpaid|overdue)\b",
        r"\bnicht (?:zugeordnet|verbucht)",
        r"\bnog niet verwerkt\b",
        r"\bnon (?:lettré|imputé)",
        r"\bno (?:aplicado|registrado)",
    ),
    _words(
        _T.PAYMENT_QUERY,
        2,
        r"\bremittance\b",
        r"\bbank (?:transfer|reference)\b",
        r"\bwire transfer\b",
        r"\bzahlungsavis\b",
        r"\büberweisung\b",
        r"\bavis de paiement\b",
        r"\bvirement\b",
        r"\btransferencia\b",
        r"\bbetalingsbewijs\b",
    ),
    _words(
        _T.PAYMENT_QUERY,
        2,
        r"\bpayment status\b",
        r"\bstatus of (?:our|the|my) payment\b",
        r"\breceived (?:our|the|my) payment\b",
        r"\bproof of payment\b",
        r"\bzahlungseingang\b",
        r"\b(?:apply|allocate) (?:the|our|this|my) payment\b",
    ),
    Rule(_T.PAYMENT_QUERY, 1.5, None, _Needs.PAYMENT),
    _words(
        _T.PAYMENT_QUERY,
        1,
        r"\bpaid\b|\bbezahlt\b|\bpayé\b|\bpagad[oa]\b|\bbetaald\b",
        needs=_Needs.INVOICE,
    ),
    # credit_limit_change
    _words(
        _T.CREDIT_LIMIT_CHANGE,
        3,
        r"\bcredit[ -]?limit",
        r"\bcredit line\b",
        r"\bkreditlimit\w*",
        r"\bkreditrahmen\w*",
        r"\blimite de crédit\b",
        r"\blímite de crédito\b",
        r"\bkredietlimiet\b",
    ),
    _words(
        _T.CREDIT_LIMIT_CHANGE,
        2,
        r"\b(?:increase|raise|extend|lift|erhöh\w*|augmenter|aumentar|ampliar|verhogen) (?:our |the |my )?"
        r"(?:credit|limit|limite|límite)\b",
    ),
    # refund
    _words(
        _T.REFUND,
        3,
        r"\brefund\w*",
        r"\breimburs\w*",
        r"\brückerstatt\w*",
        r"\berstatten\b",
        r"\brembours\w*",
        r"\breembols\w*",
        r"\bterugbetal\w*",
        r"\bterugstort\w*",
    ),
    _words(
        _T.REFUND,
        2,
        r"\b(?:please|kindly|pls|can you|could you|would you)(?: \S+){0,2} refund\b",
        r"\brequest(?:ing)? a refund\b",
        r"\brefund us\b",
        r"\bbitte (?:\S+ ){0,3}(?:erstatten|zurücküberweisen)\b",
        r"\bmerci de (?:\S+ ){0,3}rembourser\b",
    ),
    _words(
        _T.REFUND,
        2,
        r"\boverpa(?:id|yment)\b",
        r"\bpaid (?:\S+ ){0,4}twice\b",
        r"\b(?:double|duplicate) payment\b",
        r"\bzu viel (?:bezahlt|gezahlt)",
        r"\büberzahlung\b",
        r"\btrop[ -]perçu\b",
        r"\btrop payé\b",
        r"\bpago duplicado\b",
        r"\bdubbel betaald\b",
    ),
    _words(
        _T.REFUND,
        1,
        r"\bcredit balance\b",
        r"\bguthaben\b",
        r"\bsolde créditeur\b",
        r"\bsaldo a (?:nuestro |su )?favor\b",
        r"\b(?:pay|send|return|transfer) (?:the |this |that )?(?:money|amount|balance|difference) back\b",
        r"\bback to our (?:bank )?account\b",
    ),
    # write_off
    _words(
        _T.WRITE_OFF,
        3,
        r"\bwrit(?:e|ten|ing)[ -]?off\b",
        r"\bwrite (?:it|this|that|them|these|those|the (?:\S+ ){0,2}(?:balance|amount|difference)) off\b",
        r"\babschreib\w*",
        r"\bausbuch\w*",
        r"\bpasser en perte\b",
        r"\bcondonar\b",
        r"\bdar de baja\b",
        r"\bafboeken\b",
        r"\bafschrijven\b",
    ),
    _words(
        _T.WRITE_OFF,
        2,
        r"\bsmall (?:remaining |outstanding |open |residual )?(?:balance|amount|difference)\b",
        r"\b(?:remaining|residual) (?:balance|amount)\b",
        r"\brounding difference\b",
        r"\bbank (?:fees|charges) (?:were )?deducted\b",
        r"\brestbetrag\b",
        r"\bkleinbetrag\b",
        r"\brundungsdifferenz\b",
        r"\bsolde résiduel\b",
        r"\bpetit solde\b",
        r"\bsaldo residual\b",
        r"\bnot worth\b",
        r"\bwaive\w*",
        r"\bclose (?:out )?the (?:small )?(?:balance|difference)\b",
    ),
    # account_update
    _words(
        _T.ACCOUNT_UPDATE,
        3,
        r"\b(?:new|change[sd]?|chang(?:e|ing) of|update[sd]?|updating) (?:of |to )?(?:our |the |my )?"
        r"(?:billing |invoice |invoicing |postal |registered |company |mailing |office )?address\b",
        r"\bwe (?:have )?moved\b",
        r"\brelocat\w*",
        r"\badressänderung\b",
        r"\bneue (?:anschrift|adresse)\b",
        r"\bchangement d'adresse\b",
        r"\bnouvelle adresse\b",
        r"\bcambio de (?:domicilio|dirección)\b",
        r"\bnueva dirección\b",
        r"\badreswijziging\b",
        r"\bnieuw adres\b",
    ),
    _words(
        _T.ACCOUNT_UPDATE,
        3,
        r"\b(?:new|change[sd]?|update[sd]?|updating|changing) (?:of |to )?(?:our |the |my )?"
        r"bank (?:details|account|account details|information|connection)\b",
        r"\bbank (?:details|account) (?:have |has )?changed\b",
        r"\bneue bankverbindung\b",
        r"\bbankverbindung (?:hat sich )?geändert",
        r"\bnouvelles coordonnées bancaires\b",
        r"\bnuevos datos bancarios\b",
        r"\bnieuwe bankgegevens\b",
    ),
    _words(
        _T.ACCOUNT_UPDATE,
        2,
        r"\bnew (?:iban|bic|swift|account number|bank account number)\b",
        r"\bneue iban\b",
        r"\bnouveau (?:rib|iban)\b",
        r"\bnuevo iban\b",
        r"\bnueva cuenta bancaria\b",
        r"\bnieuw (?:rekeningnummer|iban)\b",
    ),
    _words(
        _T.ACCOUNT_UPDATE,
        3,
        r"\b(?:new|change[sd]?|update[sd]?|updating|changing) (?:of |to )?(?:our |the |my )?"
        r"(?:main |billing |accounts payable |ap )?(?:contact|contact person|e-?mail address|phone number"
        r"|telephone number)\b",
        r"\bcontact (?:person |details )?(?:has |have )?changed\b",
        r"\bneue[rn]? ansprechpartner\w*",
        r"\bnouveau contact\b",
        r"\bnuevo contacto\b",
        r"\bnieuwe contactpersoon\b",
        r"\b(?:send|address) (?:all )?(?:future )?(?:invoices|correspondence|statements) to\b",
        r"\bno longer with (?:the|our) company\b",
        r"\bhas left (?:the|our) company\b",
    ),
    _words(
        _T.ACCOUNT_UPDATE,
        3,
        r"\bnew (?:vat|tax) (?:number|id|registration)\b",
        r"\b(?:vat|tax) (?:number|id|registration) (?:has )?changed\b",
        r"\b(?:change|update) (?:of )?(?:our |the )?(?:vat|tax) (?:number|id)\b",
        r"\bneue (?:ust-?idnr|umsatzsteuer-?id)\w*",
        r"\bnouveau numéro de tva\b",
        r"\bnuevo (?:nif|cif)\b",
    ),
    _words(
        _T.ACCOUNT_UPDATE,
        2,
        r"\bcompany name (?:has )?changed\b",
        r"\b(?:new|changed) company name\b",
        r"\brenamed\b",
        r"\brebrand\w*",
        r"\bumfirmierung\b",
        r"\bmerged with\b",
        r"\bupdate (?:our|the|your) (?:master data|records|account details"
        r"|customer (?:data|record|details))\b",
        r"\bstammdaten\b",
    ),
    # contract_query
    _words(_T.CONTRACT_QUERY, 1, r"\bcontracts?\b", r"\bvertrag\w*", r"\bcontrats?\b", r"\bcontratos?\b"),
    _words(
        _T.CONTRACT_QUERY,
        3,
        r"\b(?:contract|agreement) (?:terms|renewal|term|expiry|expiration|extension|end date|start date"
        r"|conditions|period)\b",
        r"\b(?:renew\w*|extend\w*|terminat\w*|cancel\w*) (?:the |our |this )?(?:contract|agreement)\b",
        r"\bpayment terms\b",
        r"\bzahlungsziel\b",
        r"\bzahlungsbedingungen\b",
        r"\bvertragslaufzeit\b",
        r"\bkündigung\w*",
        r"\bconditions de paiement\b",
        r"\bplazo de pago\b",
        r"\bprice list\b",
        r"\bpreisliste\b",
        r"\brate card\b",
        r"\bnotice period\b",
        r"\bwhich (?:prices?|rates?) (?:apply|applies)\b",
    ),
    Rule(_T.CONTRACT_QUERY, 1, None, _Needs.CONTRACT),
    # service_request
    _words(
        _T.SERVICE_REQUEST,
        3,
        r"\b(?:send|resend|re-send|forward|provide|need|request|share|email)(?: us| me)? (?:a |an |the )?"
        r"(?:copy|copies|duplicate|pdf)\b",
        r"\bcopy of (?:the |our |an |this |that )?invoice",
        r"\binvoice cop(?:y|ies)\b",
        r"\brechnungskopie\w*",
        r"\bkopie der rechnung\b",
        r"\bcopie de (?:la )?facture\b",
        r"\bcopia de (?:la )?factura\b",
        r"\bkopie van de factuur\b",
    ),
    _words(
        _T.SERVICE_REQUEST,
        2,
        r"\b(?:send|need|provide|request)(?: us| me)? (?:a |an |the |our )?"
        r"(?:current |updated |latest |new )?(?:statement|account statement|statement of account)\b",
        r"\bkontoauszug\b",
        r"\brelevé de compte\b",
        r"\bextracto de cuenta\b",
        r"\bestado de cuenta\b",
        r"\brekeningoverzicht\b",
    ),
    _words(
        _T.SERVICE_REQUEST,
        2,
        r"\bportal (?:access|account|login|password)\b",
        r"\b(?:access|login|log in|password) (?:to|for) (?:the |your )?(?:customer )?portal\b",
        r"\be-?invoic\w*",
        r"\b(?:send|receive) (?:the |our )?invoices (?:by|via) (?:e-?mail|post)",
        r"\bw-?9\b",
        r"\bw-8ben\b",
        r"\btax (?:certificate|form|exemption certificate)\b",
        r"\bcertificate of (?:insurance|residence)\b",
        r"\b(?:supplier|vendor) (?:form|registration|onboarding|setup)\b",
        r"\b(?:fill|complete) (?:in|out) (?:our|the) (?:form|questionnaire)\b",
        r"\blieferantenformular\b",
    ),
)


SUBJECT_BONUS: Final = 1.4
"""A rule that matches in the subject weighs this much more: the subject names the topic.

Kept below 1.5 so that a weak word (weight 1) in the subject still cannot decide alone:
1.4 / 2.4 is below :data:`CONFIDENT_ENOUGH`.
"""


def classify(
    text: str,
    *,
    subject: str = "",
    invoice_ids: tuple[str, ...] = (),
    payment_ids: tuple[str, ...] = (),
    contract_ids: tuple[str, ...] = (),
) -> Classification:
    """The request type the words and documents point to, or ``None`` when no type clearly wins.

    Every type is scored by summing the weights of its :data:`RULES` that match the text (a rule
    that matches the subject counts :data:`SUBJECT_BONUS` times). With ``best`` the top score and
    ``runner_up`` the second::

        confidence = best / (best + 1) * (1 - runner_up / (2 * best))

    The first factor grows with the evidence (one strong phrase, weight 3, gives 0.75; a weak word
    alone 0.5); the second halves it when two types tie. Below :data:`CONFIDENT_ENOUGH` the type
    is ``None`` (the evidence is then empty): a person classifies it, nothing is defaulted.
    """
    subject_text = " ".join(subject.split())
    body_text = " ".join(text.split())
    documents = {_Needs.INVOICE: invoice_ids, _Needs.PAYMENT: payment_ids, _Needs.CONTRACT: contract_ids}
    scores: dict[RequestType, float] = {}
    evidence: dict[RequestType, list[str]] = {}
    for rule in RULES:
        in_subject = _rule_evidence(rule, subject_text, documents)
        found = in_subject if in_subject is not None else _rule_evidence(rule, body_text, documents)
        if found is None:
            continue
        bonus = SUBJECT_BONUS if in_subject is not None and rule.pattern is not None else 1.0
        scores[rule.request_type] = scores.get(rule.request_type, 0.0) + rule.weight * bonus
        evidence.setdefault(rule.request_type, []).append(found)
    if not scores:
        return Classification(None, 0.0, ())
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    best_type, best = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    confidence = round(best / (best + 1) * (1 - runner_up / (2 * best)), 3)
    if confidence < CONFIDENT_ENOUGH:
        return Classification(None, confidence, ())
    return Classification(best_type, confidence, tuple(dict.fromkeys(evidence[best_type])))


def _rule_evidence(rule: Rule, text: str, documents: dict[_Needs, tuple[str, ...]]) -> str | None:
    """What made a rule match, as a short string, or ``None`` when it does not."""
    needed = documents[rule.needs] if rule.needs is not None else ()
    if rule.needs is not None and not needed:
        return None
    if rule.pattern is None:
        return needed[0]
    match = rule.pattern.search(text)
    if match is None:
        return None
    words = match.group(0).lower()[:40]
    return f"{words} + {needed[0]}" if needed else words
