"""The fuzzer rediscovers the known divergence classes by itself, shrinks them, and explains them all."""

import json
import subprocess
import sys

import numpy as np
import pytest

from harness.audit.equivalence import CTConfig
from harness.audit.fuzz import edge_config, features, fuzz_config, kind_of, render, validity
from harness.audit.invalid import random_invalid
from harness.core.convtranspose import RULES, rule_broken

from ..helpers import run_cli


def test_kinds():
    assert kind_of("mismatch", "output 0: shape [1, 1, 9] != reference [1, 1, 10]", True) == "wrong_shape"
    assert kind_of("mismatch", "output 0: rel_l2 0.3 > 1e-05", True) == "wrong_values"
    assert kind_of("error", "compile: ValueError: output padding", True) == "rejects_valid"
    assert kind_of("error", "compile: InternalError: Check failed: x > 0", True) == "internal_error"
    assert kind_of("error", "worker killed by signal SIGSEGV after 1.0 s", True) == "crash"
    assert kind_of("error", "run: INVALID_ARGUMENT", False) == "ok"  # a clean refusal is right
    assert kind_of("mismatch", "output 0: 1 outputs, reference has 0", False) == "accepts_invalid"
    assert kind_of("error", "compile: InternalError: Check failed", False) == "internal_error_on_invalid"


def test_validity_follows_the_spec_text():
    ok = CTConfig("a", (1, 1, 4), (1, 1, 3), {"strides": [1], "dilations": [2], "output_padding": [1]}, False, False)
    assert validity(ok)  # op 1 >= stride 1 but < dilation 2
    too_big = CTConfig("b", (1, 1, 4), (1, 1, 3), {"strides": [2], "output_padding": [2]}, False, False)
    assert not validity(too_big)
    empty = CTConfig("c", (1, 1, 2), (1, 1, 1), {"pads": [1, 1]}, False, False)
    assert not validity(empty) and "invalid:output_size" in features(empty)
    rng = np.random.default_rng(0)
    assert all(validity(edge_config(rng, "e")) for _ in range(20))  # output_padding >= stride, < dilation: legal


def test_the_invalid_space_covers_every_rule():
    """Each rule of the one validation can be drawn on its own: the mutation breaks that rule first."""
    rng = np.random.default_rng(0)
    for rule in RULES:
        for i in range(10):
            cfg, got = random_invalid(rng, f"r{i}", rule)
            assert got == rule == rule_broken(cfg.attrs, cfg.x_shape, cfg.w_shape, cfg.b_shape)
    drawn = [fuzz_config(rng, f"f{i}") for i in range(600)]
    rules = {fc.rule for fc in drawn if not fc.valid}
    assert rules == set(RULES), set(RULES) - rules
    assert 0.1 < sum(not fc.valid for fc in drawn) / len(drawn) < 0.25
    assert all("invalid:" + fc.rule in features(fc.cfg) for fc in drawn if not fc.valid)


def test_the_summary_tabulates_invalid_nodes_per_engine():
    row = dict(cases=3, accepts_invalid=2, internal_error_on_invalid=1, crash_on_invalid=0, refused=0)
    s = {
        "cases": 6, "configs": 2, "seconds": 1, "backends": ["tvm-llvm"], "lowerings": ["native"],
        "failing_cases": 3, "classes": [], "invalid_by_rule": {"tvm-llvm": {"bias": row}},
        "lowerings_that_rewrote_invalid_nodes": [],
    }  # fmt: skip
    md = render(s)
    assert "| bias | 2 / 1 / 3 |" in md and "| strides | – |" in md


@pytest.mark.heavy
def test_fuzz_finds_the_known_classes_and_explains_every_one(tmp_path):
    p = run_cli(
        "fuzz",
        "--cases",
        "300",
        "--seed",
        "0",
        "--lowerings",
        "native",
        "--out",
        str(tmp_path / "fz"),
        "--build-dir",
        str(tmp_path / "b"),
        "--shrink-budget",
        "25",
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    s = json.loads((tmp_path / "fz" / "summary.json").read_text())
    assert s["cases"] == 300 and s["unexplained"] == []
    found = {(c["backend"], c["class"], c["explained_by"]) for c in s["classes"]}
    assert ("tvm-llvm", "wrong_shape", "tvm-ignores-output-shape") in found
    assert ("ort-cpu", "wrong_shape", "same-negative-total-padding-clamped") in found
    assert ("tvm-llvm", "wrong_shape", "same-negative-total-padding-clamped") in found
    assert ("ort-cpu", "rejects_valid", "output-padding-ge-stride-rejected") in found
    assert ("tvm-llvm", "accepts_invalid", "tvm-accepts-invalid-convtranspose") in found
    assert ("openvino-cpu", "wrong_shape", "same-negative-total-padding-clamped") in found
    # IREE (iree-cpu is a default engine): what its ONNX import leaves unconverted, and the invalid nodes it runs
    assert ("iree-cpu", "rejects_valid", "iree-convtranspose-unconverted") in found
    assert ("iree-cpu", "accepts_invalid", "iree-accepts-invalid-convtranspose") in found
    assert ("openvino-cpu", "accepts_invalid", "openvino-accepts-invalid-convtranspose") in found
    assert s["lowerings_that_rewrote_invalid_nodes"] == []
    inv = s["invalid_by_rule"]
    assert all(c["accepts_invalid"] == 0 for c in inv["ort-cpu"].values()), inv["ort-cpu"]  # ORT refuses them all
    assert sum(c["accepts_invalid"] for c in inv["tvm-llvm"].values()) > 0
    for c in s["classes"]:
        assert {"backend", "lowering", "class", "attributes", "count", "reproducer"} <= set(c)
        assert (tmp_path / "fz" / c["reproducer"]).exists()
    # shrinking leaves the attributes involved: the SAME class needs no bias, batch or group
    same = [c for c in s["classes"] if c["explained_by"] == "same-negative-total-padding-clamped"]
    assert all(not {"bias", "batch>1", "group"} & set(c["attributes"]) for c in same)
    ort_repro = next(c["reproducer"] for c in s["classes"] if c["backend"] == "ort-cpu" and c["class"] == "wrong_shape")
    r = subprocess.run([sys.executable, str(tmp_path / "fz" / ort_repro)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "engine output shape" in r.stdout and "reference shape" in r.stdout
