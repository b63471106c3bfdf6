"""The gate suite's cases as pytest-benchmark benchmarks (`make benchmarks`, docs/perf-gate.md).

Each case is compiled by convtx's own pipeline (lowering, the engine's rewrites, the compile cache in
`build/`), its outputs are checked against the float64 reference first (a fast but wrong case fails before
it is timed), then pytest-benchmark times `Compiled.run` in pedantic mode with convtx's warm-up and rounds
policy (the gate suite's TimingConfig). So `pytest benchmarks --benchmark-autosave` and
`--benchmark-compare=NNNN --benchmark-compare-fail=median:10%` work as they do for any pytest-benchmark user.
"""

from __future__ import annotations

from pathlib import Path

import pytest

BUILD = Path(__file__).resolve().parents[1] / "build"


@pytest.fixture(scope="session")
def build_dir() -> Path:
    BUILD.mkdir(exist_ok=True)
    return BUILD


_PREPARED: dict = {}


@pytest.fixture
def prepared(build_dir):
    """model label -> Prepared (exported, inputs and float64 reference on disk), once per session."""
    from harness.pipeline.prepare import prepare
    from harness.pipeline.sweep import zoo_ref

    def get(label: str):
        if label not in _PREPARED:
            _PREPARED[label] = prepare(zoo_ref(label), 1, 0, build_dir)
        return _PREPARED[label]

    return get
