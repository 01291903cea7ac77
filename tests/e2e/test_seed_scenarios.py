"""The seeds' worked examples (``tests/corpus/seeds.yaml``), end to end on the real local stack.

A $12,500 invoice priced above contract corrected to $11,800 whatever the customer's figure; a
delayed payment of $18,500 found and allocated; a $14,200 invoice corrected to $13,750 with the
approvals the policy requires (none: 450.00 is automatic); a $16,750 correction through its
approval steps. Fed through the contract's topics only (see :mod:`tests.e2e.corpus`).
"""

from __future__ import annotations

import pytest

from tests.e2e.corpus import CorpusResults, check, load_corpus, run_on_stack, run_token, scenario_params
from tests.support import Servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

SCENARIOS = load_corpus(["seeds.yaml"], run_token())


@pytest.fixture(scope="module")
async def seeds(servers: Servers) -> CorpusResults:
    results = await run_on_stack(servers, SCENARIOS)
    print(results.summary)
    return results


@pytest.mark.parametrize("name", scenario_params(SCENARIOS))
def test_seed_scenario(name: str, seeds: CorpusResults) -> None:
    check(SCENARIOS, name, seeds)
