"""`crs demo-data --seed`: datasets of different seeds never share an id (issue 14, point 9)."""

from __future__ import annotations

import pytest

from crs.demo_data import generate_demo_data


def _ids(seed: int) -> set[str]:
    return {record.key for record in generate_demo_data(customers=30, seed=seed).records()}


@pytest.mark.parametrize(("first", "second"), [(42, 1), (1, 2), (0, 42), (0, 1), (7, 42)])
def test_two_seeds_datasets_share_no_id(first: int, second: int) -> None:
    assert not _ids(first) & _ids(second)


def test_the_default_seed_keeps_the_plain_numbers_and_others_show_their_seed() -> None:
    assert generate_demo_data(customers=5).customers[0].key == "CUST-00001"
    assert generate_demo_data(customers=5, seed=1).customers[0].key == "CUST-100001"
    assert generate_demo_data(customers=5, seed=3).invoices[0].key.split("-")[2].startswith("3")
