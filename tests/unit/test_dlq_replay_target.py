"""Where `crs dlq replay` sends a dead letter: to the service that failed on it, with its place."""

from __future__ import annotations

from crs.dlq import REPLAYED_FROM, DeadLetter, replay_target
from crs.io import TopicRecord


def dead_letter(**headers: str) -> DeadLetter:
    record = TopicRecord(
        topic="erp.resolutions.v1.dlq",
        partition=1,
        offset=7,
        key="REQ-1",
        value={"resolution_id": "RES-1"},
        raw=b'{"resolution_id": "RES-1"}',
        headers={"x-error-reason": "handler_failed", "x-original-topic": "erp.resolutions.v1", **headers},
        timestamp_ms=1_795_000_000_000,
    )
    return DeadLetter(record)


def test_a_dead_letter_goes_back_to_the_failed_service_alone_with_its_original_place() -> None:
    letter = dead_letter(
        **{
            "x-failed-service": "audit",
            "x-original-partition": "3",
            "x-original-offset": "41",
            "x-original-key": "REQ-1",
        }
    )
    target = replay_target(letter)
    assert target.topic == "replays.audit.v1"
    assert dict(target.headers) == {
        REPLAYED_FROM: b"erp.resolutions.v1.dlq:1:7",
        "x-replay-for": b"audit",
        "x-original-topic": b"erp.resolutions.v1",
        "x-original-partition": b"3",
        "x-original-offset": b"41",
        "x-original-key": b"REQ-1",
    }


def test_a_dead_letter_that_names_no_service_of_ours_goes_to_its_original_topic() -> None:
    for headers in ({}, {"x-failed-service": "someone-else"}):
        target = replay_target(dead_letter(**headers))
        assert target.topic == "erp.resolutions.v1"
        assert target.headers == [(REPLAYED_FROM, b"erp.resolutions.v1.dlq:1:7")]
