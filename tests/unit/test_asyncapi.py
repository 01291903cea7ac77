"""The committed AsyncAPI document is what the message models generate."""

from __future__ import annotations

import json
from pathlib import Path

from crs.asyncapi import build_document, render
from shared.topics import ALL_TOPICS

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_the_committed_document_is_in_step_with_the_models() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == render(), (
        "run `crs asyncapi` and commit docs/asyncapi.json"
    )


def test_every_topic_is_documented_with_its_money_as_decimal_strings() -> None:
    document = build_document()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(ALL_TOPICS)
    money = document["components"]["schemas"]["Money"]["properties"]["amount"]
    assert money["type"] == "string"
    json.dumps(document)  # serialisable as it stands
