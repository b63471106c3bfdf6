"""One benchmark per (model, lowering, backend) of the gate suite that runs here."""

from __future__ import annotations

import math

import pytest

from harness.backends import BACKENDS, compile_case, get_backend
from harness.checking.numerics import compare
from harness.core.config import RunConfig, get_suite
from harness.pipeline.case import case_artifact

SUITE = get_suite("gate")
CFG = RunConfig(threads=1, timing=SUITE.timing)
CASES = [
    (m, lw, b)
    for m in SUITE.models
    for lw in SUITE.lowerings
    for b in SUITE.backends
    if get_backend(b).availability() and (lw == "native" or not BACKENDS[b].zoo_only)
]


def rounds_for(seconds_per_call: float, timing=SUITE.timing) -> int:
    """convtx's rounds policy (harness/measure/timing.measure) as a fixed count for pedantic mode: enough
    calls for both `min_repeats` and `min_time_s`, at most `max_time_s` of calls (at least 3) and
    `max_repeats`."""
    want = max(timing.min_repeats, math.ceil(timing.min_time_s / max(seconds_per_call, 1e-9)))
    cap = max(3, math.floor(timing.max_time_s / max(seconds_per_call, 1e-9)))
    return max(1, min(want, cap, timing.max_repeats))


@pytest.mark.parametrize(("model", "lowering", "backend"), CASES, ids=[f"{m}/{lw}/{b}" for m, lw, b in CASES])
def test_case(benchmark, prepared, build_dir, model, lowering, backend):
    import time

    prep = prepared(model)
    be = get_backend(backend)
    details: dict = {}
    compiled = compile_case(be, case_artifact(prep, lowering, be, CFG, build_dir, details), CFG)
    try:
        feeds, refs = prep.load_data()
        policy = compiled.info.get("numerics_policy", "float32")
        cmp = compare(compiled.run(feeds), refs, policy)
        benchmark.extra_info.update(
            {"passed": cmp.passed, "policy": policy, "reason": cmp.reason, "lowered": details["lowering"]["lowered"]}
        )
        assert cmp.passed, f"{model}/{lowering}/{backend}: {cmp.reason}"  # the verdict before the time
        t0 = time.perf_counter()
        compiled.run(feeds)
        per_call = time.perf_counter() - t0
        benchmark.group = model
        benchmark.pedantic(
            compiled.run,
            args=(feeds,),
            warmup_rounds=SUITE.timing.warmup,
            rounds=rounds_for(per_call),
            iterations=1,
        )
    finally:
        compiled.close()
