"""`deploy/README.md` counts what `shared/topics.py` and the settings define (issue 14, point 8)."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import InfrastructureSettings
from shared.topics import ALL_TOPICS, CONSUMED_TOPICS, DLQ_SUFFIX, REQUEST_TOPICS

WORDS = {"nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13}
README = Path(__file__).resolve().parents[2] / "deploy" / "README.md"


def test_the_deployment_guide_counts_the_topics_and_the_partitions_default_right() -> None:
    text = README.read_text(encoding="utf-8")
    plain = [topic for topic in ALL_TOPICS if not topic.endswith(DLQ_SUFFIX)]
    topics = re.search(
        r"the (\d+) topics of `shared/topics.py`.*?each\s+of the (\d+) it consumes: (\d+) in all", text, re.S
    )
    assert topics is not None
    assert tuple(int(number) for number in topics.groups()) == (
        len(plain),
        len(CONSUMED_TOPICS),
        len(ALL_TOPICS),
    )
    request = re.search(r"the (\w+) of `REQUEST_TOPICS`", text)
    assert request is not None
    assert WORDS[request.group(1)] == len(REQUEST_TOPICS)
    default = re.search(r"\((\d+) when\s+unset", text)
    assert default is not None
    assert int(default.group(1)) == InfrastructureSettings.model_fields["topic_partitions"].default
