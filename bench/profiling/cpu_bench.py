"""pytest-benchmark module that ``tgrpo-bench profile`` runs on CPU, one benchmark per case.

The cases come from the JSON file named by ``$TGRPO_PROFILE_CASES`` (written by
:func:`bench.profiling.timing.time_cpu`); without it this module has no test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.profiling.cases import Case, build

_SPEC = os.environ.get("TGRPO_PROFILE_CASES")
CASES = [Case.from_dict(d) for d in json.loads(Path(_SPEC).read_text())] if _SPEC else []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(benchmark, case: Case) -> None:
    call = build(case, "cpu")
    benchmark.extra_info["case"] = case.id
    benchmark(call)
