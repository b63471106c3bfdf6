"""The ONNX node tests through the engines, judged strictly against the ledger."""

import json

import pytest

from harness.audit.conformance import LEDGER, collect, expectation, judge, judge_invalid
from harness.core.convtranspose import RULES

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


@pytest.mark.parametrize(
    "backends",
    [
        "ort-cpu",
        pytest.param("tvm-llvm", marks=pytest.mark.heavy),  # TVM compiles ~90 models: heavy
        "openvino-cpu",
        pytest.param("iree-cpu", marks=pytest.mark.heavy),  # so does IREE (about a minute)
    ],
)
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
    md = (tmp_path / "conf" / "conformance.md").read_text()
    assert "Conformance" in md and "## Invalid nodes" in md
    # every rule's minimal invalid node ran; ORT refuses them all, TVM and OpenVINO accept some (in the ledger)
    inv = summary["invalid"][backends]
    assert set(inv) == set(RULES)
    verdicts = [v for cases in inv.values() for _, v, _ in cases]
    assert "FAIL" not in verdicts and "XPASS" not in verdicts
    assert ("xfail" in verdicts) == (backends != "ort-cpu"), inv


def test_an_invalid_node_is_judged_against_the_ledger_by_rule():
    from harness.audit.invalid import EXAMPLES

    bias = EXAMPLES["bias"][0]
    refused = judge_invalid("tvm-llvm", "invalid.bias.x", "bias", bias, "error", "compile: ValueError: bias")
    assert refused.verdict == "pass"
    accepted = judge_invalid("tvm-llvm", "invalid.bias.x", "bias", bias, "ok", "")
    assert accepted.verdict == "xfail" and "tvm-accepts-invalid-convtranspose" in accepted.reason
    # ORT has no entry: were it to accept the node, that is a new failure
    assert judge_invalid("ort-cpu", "invalid.bias.x", "bias", bias, "ok", "").verdict == "FAIL"
    # OpenVINO refuses a wrong bias length: its entry does not name the rule
    assert judge_invalid("openvino-cpu", "invalid.bias.x", "bias", bias, "ok", "").verdict == "FAIL"
