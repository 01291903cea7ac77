"""The type of a request, from weighted rules kept as data (``rules/classification.toml``).

Every type is scored by the weights of its rules that match; the type is ``None`` whenever the best
type does not clearly win: such a request goes to a person, it is never defaulted.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final

from shared.contract import RequestType

RULES_FILE: Final = Path(__file__).with_name("rules") / "classification.toml"

CONFIDENT_ENOUGH: Final = 0.6
"""Below this confidence the type is ``None`` and a person classifies the request."""


@dataclass(frozen=True)
class Classification:
    """The request type the words suggest, how sure that is, and the words that decided it."""

    request_type: RequestType | None
    confidence: float
    evidence: tuple[str, ...]


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


def load_rules(path: Path = RULES_FILE) -> tuple[Rule, ...]:
    """The rules of ``path``, in the file's order; a rule that cannot be used raises ``ValueError``."""
    with path.open("rb") as file:
        entries: list[dict[str, Any]] = tomllib.load(file).get("rule", [])
    return tuple(_rule(entry, f"{path.name} rule {number}") for number, entry in enumerate(entries, 1))


def _rule(entry: dict[str, Any], where: str) -> Rule:
    try:
        request_type = RequestType(entry["type"])
        weight = float(entry["weight"])
        needs = _Needs(entry["needs"]) if "needs" in entry else None
        patterns = [str(pattern) for pattern in entry.get("patterns", [])]
        compiled = re.compile("|".join(patterns), re.IGNORECASE) if patterns else None
    except (KeyError, ValueError, re.error) as error:
        raise ValueError(f"{where}: {error}") from error
    if weight <= 0 or (compiled is None and needs is None):
        raise ValueError(f"{where}: a rule needs a positive weight and patterns or a document it needs")
    return Rule(request_type, weight, compiled, needs)


RULES: Final[tuple[Rule, ...]] = load_rules()


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
