"""The sender's own text: quoted replies, forwards and signatures set apart.

Sign-offs are data (``rules/quoting.toml``); the forward and reply markers (English, German,
French, Spanish and Dutch) stay in the patterns here: they are a mail client's grammar more than
words.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_MAX_HEADER_LINE = 400  # attribution lines longer than this are prose, not "On ... wrote:"


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
_SIGN_OFFS: Final = tomllib.loads(
    (Path(__file__).with_name("rules") / "quoting.toml").read_text(encoding="utf-8")
)["sign_offs"]
_SIGN_OFF = re.compile(
    rf"^(?:{'|'.join(phrase for phrases in _SIGN_OFFS.values() for phrase in phrases)})[\s,.!]{{0,3}}$", re.I
)
"""A line that closes a message, in five languages (``rules/quoting.toml``)."""
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
