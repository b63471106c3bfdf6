"""The fuzzer rediscovers the known divergence classes by itself, shrinks them, and explains them all."""

import json
import subprocess
import sys

import numpy as np
import pytest

from harness.audit.equivalence import CTConfig
from harness.audit.fuzz import edge_config, features, kind_of, validity

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
    assert not validity(empty) and "empty_output" in features(empty)
    rng = np.random.default_rng(0)
    assert {edge_config(rng, "e").attrs.get("output_padding") is not None for _ in range(20)} == {True, False}


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
    assert ("tvm-llvm", "internal_error_on_invalid", "tvm-invalid-output-size-not-refused") in found
    assert ("openvino-cpu", "wrong_shape", "same-negative-total-padding-clamped") in found
    assert ("openvino-cpu", "accepts_invalid", "openvino-invalid-output-size-not-refused") in found
    for c in s["classes"]:
        assert {"backend", "lowering", "class", "attributes", "count", "reproducer"} <= set(c)
        assert (tmp_path / "fz" / c["reproducer"]).exists()
    # shrinking leaves the attributes involved: the SAME class needs no bias, batch or group
    same = [c for c in s["classes"] if c["explained_by"] == "same-negative-total-padding-clamped"]
    assert all(not {"bias", "batch>1", "group"} & set(c["attributes"]) for c in same)
    ort_repro = next(c["reproducer"] for c in s["classes"] if c["backend"] == "ort-cpu" and c["class"] == "wrong_shape")
    r = subprocess.run([sys.executable, str(tmp_path / "fz" / ort_repro)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "engine output shape" in r.stdout and "reference shape" in r.stdout
