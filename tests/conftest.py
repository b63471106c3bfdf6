"""Shared fixtures. Helpers (run_cli, ROOT, the model builders) live in tests/helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .helpers import make_convtranspose_model


@pytest.fixture
def hand_model(tmp_path) -> Path:
    return make_convtranspose_model(
        tmp_path / "hand.onnx",
        strides=[2, 2],
        pads=[1, 0, 0, 1],
        output_padding=[1, 0],
        group=2,
        x_shape=(1, 4, 5, 5),
        w_shape=(4, 3, 3, 3),
    )


# Tests that need a tool say so by a marker, requires_<tool> (registered in pyproject.toml). A missing tool
# is never a silent skip: under CI (CI=true, or --require-tools, which .ci/run passes) the test fails with
# what to install; elsewhere it skips with that same reason, which `-ra` prints.
MISSING_TOOL = {
    "valgrind": "valgrind missing: install it (make setup-tools, i.e. apt-get install -y valgrind)",
    "nvcc": "nvcc missing: install the CUDA toolkit",
}


def pytest_addoption(parser):
    parser.addoption(
        "--require-tools",
        action="store_true",
        help="a test marked requires_<tool> fails, instead of skipping, when the tool is missing (CI=true too)",
    )


def _tool_missing(tool: str) -> bool:
    import shutil

    if shutil.which(tool) is None:
        return True
    if tool == "valgrind":
        from harness.measure import counting

        return counting._header_dir() is None  # the client-request headers the counting harness compiles
    return False


def pytest_runtest_setup(item):
    for tool, why in MISSING_TOOL.items():
        if item.get_closest_marker(f"requires_{tool}") is not None and _tool_missing(tool):
            ci = item.config.getoption("--require-tools") or os.environ.get("CI", "").lower() in ("1", "true")
            (pytest.fail if ci else pytest.skip)(why)


@pytest.fixture(scope="session")
def shared_build_dir(tmp_path_factory) -> Path:
    """One build dir for the session (never the repository's build/): for expensive content-addressed
    artefacts (exported ONNX, compiled libraries) that several end-to-end tests may share."""
    return tmp_path_factory.mktemp("build")
