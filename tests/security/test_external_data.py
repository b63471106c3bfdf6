"""Models with external data (a `.onnx` and a `.bin` beside it): every cache key covers the weights, and
every consumer resolves the weights relative to the model's folder, whatever the working folder."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.core.onnx_io import model_digest

from ..helpers import convtranspose_model, run_cli


def _external(path, w, b):
    """X -> ConvTranspose(W, B) -> Relu, W and B in `path`.bin."""
    m = convtranspose_model((1, 4, 6, 6), w, b, relu=True, strides=[2, 2], pads=[1, 1, 1, 1])
    onnx.save_model(m, str(path), save_as_external_data=True, location=path.name + ".bin", size_threshold=0)
    return path


def _validate(tmp_path, model, lowerings="native,explicit_pads", cwd=None):
    out = tmp_path / f"v{len(list(tmp_path.glob('v*.json')))}.json"
    p = run_cli(
        "validate", str(model), "--backends", "ort-cpu", "--lowerings", lowerings, "--threads", "1",
        "--build-dir", str(tmp_path / "build"), "--json", str(out), "--no-localise", cwd=cwd,
    )  # fmt: skip
    assert p.returncode in (0, 1), p.stderr[-2000:]
    return {r["lowering"]: r for r in json.loads(out.read_text())}


def test_changing_only_the_weights_file_changes_every_key_and_every_verdict_is_fresh(tmp_path):
    """Before: after changing only the .bin, `native` said mismatch (fresh ORT against the stale cached
    reference) and `explicit_pads` said ok (the stale cached lowered model still held the old weights)."""
    rng = np.random.default_rng(0)
    model = _external(tmp_path / "m.onnx", rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(3))
    d0 = model_digest(model)
    first = _validate(tmp_path, model)
    assert all(r["status"] == "ok" for r in first.values()), first
    onnx_bytes = model.read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    _external(other / "m.onnx", 5 * rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(3))
    shutil.copyfile(other / "m.onnx.bin", tmp_path / "m.onnx.bin")  # only the weights file changes
    assert model.read_bytes() == onnx_bytes
    assert model_digest(model) != d0
    second = _validate(tmp_path, model)
    assert all(r["status"] == "ok" for r in second.values()), second
    build = tmp_path / "build"  # one reference and one lowered model per version of the weights
    assert len(list((build / "data").glob("*.npz"))) == 2
    assert len(list((build / "lowered").glob("*-explicit_pads-*.onnx"))) == 2


def _constant_external(folder, value):
    """X + Constant(C): C's tensor (an attribute, not an initializer) in folder/c.bin."""
    folder.mkdir(exist_ok=True)
    c = numpy_helper.from_array(np.full((1, 2, 3, 3), value, np.float32), "C")
    node_c = helper.make_node("Constant", [], ["C"], value=c)
    add = helper.make_node("Add", ["X", "C"], ["Y0"])
    ct = helper.make_node("ConvTranspose", ["Y0", "W"], ["Y"], name="ct", strides=[2, 2])
    w = numpy_helper.from_array(np.ones((2, 2, 2, 2), np.float32), "W")
    g = helper.make_graph(
        [node_c, add, ct],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2, 6, 6])],
        [w],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    path = folder / "m.onnx"
    onnx.save_model(
        m, str(path), save_as_external_data=True, location="c.bin", size_threshold=0, convert_attribute=True
    )
    assert any(
        a.t.data_location == TensorProto.EXTERNAL
        for a in onnx.load(str(path), load_external_data=False).graph.node[0].attribute
    )
    return path


def test_external_data_in_a_constant_resolves_against_the_model_s_folder(tmp_path):
    """Run from a folder holding a different `c.bin`: the checker and the reference used to read that one
    (relative to the working folder) while ORT read the model's: a mismatch for a correct model."""
    model = _constant_external(tmp_path / "model", 1.0)
    elsewhere = tmp_path / "elsewhere"
    _constant_external(elsewhere, 7.0)
    os.remove(elsewhere / "m.onnx")
    recs = _validate(tmp_path, model.resolve(), lowerings="native", cwd=elsewhere)
    assert recs["native"]["status"] == "ok", recs["native"]["reason"]


def test_the_digest_covers_every_external_tensor_and_nothing_else(tmp_path):
    model = _constant_external(tmp_path / "a", 1.0)
    d = model_digest(model)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert model_digest(tmp_path / "b" / "m.onnx") == d, "a copy elsewhere is the same model"
    (tmp_path / "b" / "unrelated.bin").write_bytes(b"x")
    assert model_digest(tmp_path / "b" / "m.onnx") == d
    with open(tmp_path / "b" / "c.bin", "r+b") as f:
        f.write(b"\x01")
    assert model_digest(tmp_path / "b" / "m.onnx") != d


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd"])
def test_an_external_location_outside_the_model_s_folder_is_refused(tmp_path, location):
    model = _constant_external(tmp_path / "a", 1.0)
    m = onnx.load(str(model), load_external_data=False)
    for e in m.graph.node[0].attribute[0].t.external_data:
        if e.key == "location":
            e.value = location
    onnx.save(m, str(model))
    p = run_cli("validate", str(model), "--backends", "ort-cpu", "--build-dir", str(tmp_path / "b"))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "m.onnx" in p.stderr and "outside" in p.stderr
