"""The sender of an email: display name and address, as loosely as gateways write them."""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.header import decode_header, make_header

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
