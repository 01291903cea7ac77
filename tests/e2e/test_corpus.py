"""The corpus of real-world inputs (``tests/corpus``), end to end on the real local stack.

ERP and master-data records, CRM cases and emails written the way other systems and people write
them, each with the outcome the contract demands, all run at once through the five services on
the real broker and database (see :mod:`tests.e2e.corpus`). One test per scenario; a scenario the
code cannot pass yet is a strict xfail naming what is missing, so it fails loudly once built.
"""

from __future__ import annotations

import pytest

from tests.e2e.corpus import (
    CorpusResults,
    check,
    load_corpus,
    run_on_stack,
    run_token,
    scenario_params,
)
from tests.support import Servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

SCENARIOS = load_corpus(["reference.yaml", "crm.yaml", "email.yaml"], run_token())


@pytest.fixture(scope="module")
async def corpus(servers: Servers) -> CorpusResults:
    results = await run_on_stack(servers, SCENARIOS)
    print(results.summary)
    return results


@pytest.mark.parametrize("name", scenario_params(SCENARIOS))
def test_scenario(name: str, corpus: CorpusResults) -> None:
    check(SCENARIOS, name, corpus)
