"""Every relative link in the README and `docs/` leads somewhere: to a file that exists and, when it
names an `#anchor`, to a heading of that file, by GitHub's rules for heading anchors.

The README was split into `docs/` (issue 11, item 7): sections moved, and a link into a moved
section must follow it. Links to other sites are not checked (no network in unit tests).
"""

from __future__ import annotations

import itertools
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("**/*.md"), *(ROOT / "deploy").glob("**/*.md")])

_PARSER = MarkdownIt("commonmark").enable("table")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading whose rendered text is ``heading`` (as github-slugger does).

    Lower-cased; every character that is not a letter, a digit, a combining mark, ``_``, ``-`` or
    a space dropped; each space a ``-``.
    """
    kept = (
        char for char in heading.lower() if char in "_- " or unicodedata.category(char)[0] in {"L", "N", "M"}
    )
    return "".join(kept).replace(" ", "-")


def _rendered_text(inline: Token) -> str:
    """The text of an inline token as a reader sees it: code and link texts kept, markup dropped."""
    parts = []
    for child in inline.children or ():
        if child.type in {"text", "code_inline"}:
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
    return "".join(parts)


@dataclass(frozen=True)
class Link:
    """One link of a document: where it is written and what it points to."""

    document: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}: ({self.target})"


@cache
def _tokens(document: Path) -> list[Token]:
    return _PARSER.parse(document.read_text(encoding="utf-8"))


@cache
def anchors(document: Path) -> frozenset[str]:
    """The anchors of a Markdown document's headings; a repeated heading gets ``-1``, ``-2``, ..."""
    seen: Counter[str] = Counter()
    found = set()
    tokens = _tokens(document)
    for opening, inline in itertools.pairwise(tokens):
        if opening.type != "heading_open":
            continue
        anchor = github_anchor(_rendered_text(inline))
        found.add(f"{anchor}-{seen[anchor]}" if seen[anchor] else anchor)
        seen[anchor] += 1
    return frozenset(found)


def links(document: Path) -> list[Link]:
    """Every link and image of a document (not what code spans or code blocks show)."""
    found = []
    for token in _tokens(document):
        line = token.map[0] + 1 if token.map else 0
        for child in token.children or ():
            target = child.attrGet("href") if child.type == "link_open" else child.attrGet("src")
            if isinstance(target, str):
                found.append(Link(document, line, target))
    return found


def relative_links() -> list[Link]:
    return [
        link
        for document in DOCUMENTS
        for link in links(document)
        if not urlsplit(link.target).scheme and not link.target.startswith("//")
    ]


def broken(link: Link) -> str | None:
    """Why a relative link leads nowhere, or None when it leads to what it names."""
    parts = urlsplit(link.target)
    path = unquote(parts.path)
    target = (link.document.parent / path).resolve() if path else link.document
    if not target.is_relative_to(ROOT):
        return f"{target} is outside the repository"
    if not target.exists():
        return f"{target.relative_to(ROOT)} does not exist"
    if parts.fragment and target.suffix == ".md" and unquote(parts.fragment) not in anchors(target):
        return f"{target.relative_to(ROOT)} has no heading with the anchor #{parts.fragment}"
    return None


def test_every_relative_link_of_the_readme_and_docs_leads_to_an_existing_file_and_heading() -> None:
    problems = [f"{link}: {reason}" for link in relative_links() if (reason := broken(link))]
    assert not problems, "\n".join(problems)


def test_the_readme_links_the_docs_it_was_split_into() -> None:
    linked = {
        (ROOT / urlsplit(link.target).path).resolve()
        for link in links(ROOT / "README.md")
        if not urlsplit(link.target).scheme
    }
    unlinked = [doc.name for doc in sorted((ROOT / "docs").glob("*.md")) if doc.resolve() not in linked]
    assert not unlinked, f"the README's index of the docs misses {unlinked}"


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("A request's life", "a-requests-life"),
        (
            "The audit trail: hash chains, crs audit verify, crs record",
            "the-audit-trail-hash-chains-crs-audit-verify-crs-record",
        ),
        (
            "Faults: what the system guarantees and what it does not",
            "faults-what-the-system-guarantees-and-what-it-does-not",
        ),
        ("Local stand-ins, and why", "local-stand-ins-and-why"),
        ("Ask the customer (awaiting_customer)", "ask-the-customer-awaiting_customer"),
        ("Über die Rechnung – 2026", "über-die-rechnung--2026"),
    ],
)
def test_anchors_follow_githubs_rules(heading: str, anchor: str) -> None:
    assert github_anchor(heading) == anchor


def test_a_link_to_a_missing_heading_or_file_is_found() -> None:
    docs = ROOT / "docs"
    assert broken(Link(docs / "routing.md", 1, "../README.md#no-such-heading")) is not None
    assert broken(Link(docs / "routing.md", 1, "no-such-file.md")) is not None
    assert broken(Link(docs / "routing.md", 1, "../README.md#a-requests-life")) is None
    assert broken(Link(ROOT / "README.md", 1, "docs/routing.md#routing-rules-priorities-and-slas")) is None
