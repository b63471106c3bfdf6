"""The ONNX node tests through the engines, judged strictly against the ledger."""

import json

import pytest

from harness.audit.conformance import LEDGER, collect, expectation, judge

from ..helpers import run_cli


def test_the_selected_node_tests_cover_convtranspose_and_upsampling():
    names = [c.name for c in collect()]
    assert sum(n.startswith("test_convtranspose") for n in names) == 11
    for prefix in ("test_col2im", "test_depthtospace", "test_maxunpool", "test_resize_upsample", "test_upsample"):
        assert any(n.startswith(prefix) for n in names), prefix
    assert not any("downsample" in n for n in names)


def test_judging_is_strict():
    assert judge("tvm-llvm", "test_col2im.const", "Col2Im", "skipped", "no converter").verdict == "xfail"
    assert judge("tvm-llvm", "test_col2im.const", "Col2Im", "ok", "").verdict == "XPASS"  # stale entry
    assert judge("ort-cpu", "test_convtranspose.const", "ConvTranspose", "mismatch", "x").verdict == "FAIL"
    assert expectation("tvm-llvm", "test_convtranspose_output_shape.const/phase") is None  # lowerings fix it
    assert all(e.reason for e in LEDGER)


@pytest.mark.parametrize("backends", ["ort-cpu", "tvm-llvm", "openvino-cpu"])
def test_conformance_command_passes_against_the_ledger(backends, tmp_path):
    out = tmp_path / "c.json"
    p = run_cli(
        "conformance",
        "--backends",
        backends,
        "--lowerings",
        "native,phase",
        "--json",
        str(out),
        "--out",
        str(tmp_path / "conf"),
        "--build-dir",
        str(tmp_path / "b"),
    )
    summary = json.loads(out.read_text())
    t = summary["table"][backends]
    assert t["FAIL"] == 0 and t["XPASS"] == 0, [o for o in summary["outcomes"] if o["verdict"] in ("FAIL", "XPASS")]
    assert t["pass"] > 0
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr  # the ratchet holds only for a run of all lowerings
    assert "Conformance" in (tmp_path / "conf" / "conformance.md").read_text()
