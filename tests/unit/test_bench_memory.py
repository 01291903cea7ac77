"""``crs bench``'s memory figures: a warm-up that levels off is told apart from growth that goes on."""

from __future__ import annotations

from crs.bench import MIB, BenchResult, Cost, Memory, RunFigures, as_json, goals


def _memory(*mib: int) -> Memory:
    memory = Memory(start=mib[0] * MIB, end=mib[-1] * MIB)
    for value in mib:
        memory.sample(value * MIB)
    return memory


def _result(memory: dict[str, Memory]) -> BenchResult:
    cost = Cost(
        statements={},
        database_cpu_seconds={},
        service_cpu_seconds={},
        memory=memory,
        load_before=(0.0, 0.0, 0.0),
        load_after=(0.0, 0.0, 0.0),
    )
    return BenchResult(count=10, rate=None, system=RunFigures(10, 1.0, [1.0] * 10), relay=None, cost=cost)


def test_a_service_that_fills_its_buffers_and_levels_off_grows_nothing_later() -> None:
    warming = _memory(100, 120, 130, 130, 129, 131, 130, 130)
    assert warming.peak == 131 * MIB
    assert warming.later_growth == 1 * MIB


def test_a_service_whose_memory_goes_on_rising_shows_it_in_the_later_growth() -> None:
    growing = _memory(100, 110, 120, 130, 140, 150, 160, 170)
    assert growing.later_growth == 40 * MIB
    said = goals(_result({"audit": _memory(100, 130, 130, 130), "workspace": growing}))[-1]
    assert "+40.0 MiB" in said
    assert "+70%" in said  # from the start, the warm-up included


def test_the_json_figures_hold_no_sample_series() -> None:
    figures = as_json(_result({"audit": _memory(100, 130, 130, 131)}))["memory_bytes"]["audit"]
    assert figures == {"start": 100 * MIB, "end": 131 * MIB, "peak": 131 * MIB, "later_growth": 1 * MIB}
