"""Bad input: one line on stderr naming the file or value and what was expected, exit 2, no traceback,
nothing half-written."""

import numpy as np
import pytest

from ..helpers import assert_one_line_error, make_convtranspose_model, run_cli


def test_missing_file(tmp_path):
    assert_one_line_error(
        run_cli("validate", str(tmp_path / "nope.onnx"), "--build-dir", str(tmp_path / "build")),
        "nope.onnx",
        "no such file",
    )


def test_empty_file(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    assert_one_line_error(
        run_cli("validate", str(tmp_path / "empty.onnx"), "--build-dir", str(tmp_path / "build")),
        "empty.onnx",
        "empty file",
    )


def test_truncated_file(tmp_path, hand_model):
    data = hand_model.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    assert_one_line_error(
        run_cli("validate", str(tmp_path / "cut.onnx"), "--build-dir", str(tmp_path / "build")),
        "cut.onnx",
        "not an ONNX model",
    )


def test_random_bytes(tmp_path):
    import numpy as np

    (tmp_path / "noise.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    assert_one_line_error(
        run_cli("validate", str(tmp_path / "noise.onnx"), "--build-dir", str(tmp_path / "build")),
        "noise.onnx",
        "not an ONNX model",
    )


def test_valid_protobuf_that_is_not_a_model(tmp_path):
    import numpy as np
    from onnx import numpy_helper

    (tmp_path / "tensor.onnx").write_bytes(numpy_helper.from_array(np.zeros(3, np.float32)).SerializeToString())
    assert_one_line_error(
        run_cli("validate", str(tmp_path / "tensor.onnx"), "--build-dir", str(tmp_path / "build")),
        "tensor.onnx",
        "not an ONNX model",
    )


def test_model_that_fails_the_checker(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["X"], ["Y"])
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 1  # IR 1 with opset 18 is invalid
    (tmp_path / "bad.onnx").write_bytes(m.SerializeToString())
    assert_one_line_error(
        run_cli("validate", str(tmp_path / "bad.onnx"), "--build-dir", str(tmp_path / "build")),
        "bad.onnx",
        "ONNX checker",
    )


def test_symbolic_dims_need_shape(tmp_path):
    path = make_convtranspose_model(tmp_path / "sym.onnx", dim_param="N", strides=[2, 2])
    assert_one_line_error(
        run_cli("validate", str(path), "--build-dir", str(tmp_path / "build")),
        "sym.onnx",
        "symbolic",
        "--shape X=Nx4x5x5",
    )


def test_an_input_larger_than_memory_is_refused_once_up_front(tmp_path):
    """1x4x200000x200000 float32 is 596 GiB: refused before anything is allocated or written (no
    `MemoryError: Unable to allocate` per case), one line naming the file, the input, the bytes and the memory."""
    path = make_convtranspose_model(tmp_path / "big.onnx", x_shape=(1, 4, 200000, 200000), strides=[2, 2])
    out = tmp_path / "v.json"
    build = tmp_path / "build"
    proc = run_cli("validate", str(path), "--backends", "ort-cpu", "--json", str(out), "--build-dir", str(build))
    line = assert_one_line_error(proc, "big.onnx", "input 'X' 1x4x200000x200000 float32 needs 596.0 GiB", "available")
    assert "MemoryError" not in line
    assert not out.exists() and not build.exists(), "nothing written"
    runs = tmp_path / "runs"
    proc = run_cli(
        "bench", "--models", str(path), "--backends", "ort-cpu", "--out", str(runs), "--build-dir", str(build)
    )
    assert_one_line_error(proc, "big.onnx", "needs 596.0 GiB")
    assert not runs.exists()


def test_a_reference_larger_than_memory_is_refused_up_front():
    """Small inputs, a huge graph: the float64 reference keeps every tensor, and the check adds them up from
    shape inference (here an available memory of 1 GiB is given to the check itself)."""
    from harness.core.errors import ConvtxError
    from harness.core.memory import check_inputs
    from harness.core.onnx_io import fix_input_shapes

    from ..helpers import convtranspose_model

    m = convtranspose_model((1, 4, 512, 512), np.ones((4, 64, 3, 3)), dim_param="N", strides=[4, 4])
    shapes = {"X": (1, 4, 512, 512)}
    check_inputs("m.onnx", shapes, {"X": "float32"}, available=1 << 30)  # 4 MiB of inputs: fine alone
    with pytest.raises(
        ConvtxError, match=r"m.onnx: the float64 reference needs at least \d\.\d GiB .* 1\.0 GiB available"
    ):
        check_inputs("m.onnx", shapes, {"X": "float32"}, fix_input_shapes(m, shapes), available=1 << 30)


def test_shape_that_contradicts_the_model(tmp_path):
    path = make_convtranspose_model(tmp_path / "sym.onnx", dim_param="N", strides=[2, 2])
    assert_one_line_error(
        run_cli("validate", str(path), "--shape", "X=1x3x5x5", "--build-dir", str(tmp_path / "build")),
        "dimension 1 is 4",
    )
    assert_one_line_error(
        run_cli("validate", str(path), "--shape", "X=1x4x5", "--build-dir", str(tmp_path / "build")), "rank 4"
    )
    assert_one_line_error(
        run_cli("validate", str(path), "--shape", "Z=1x4x5x5", "--build-dir", str(tmp_path / "build")),
        "no input 'Z'",
        "X",
    )
    assert_one_line_error(
        run_cli("validate", str(path), "--shape", "X=1xfoo", "--build-dir", str(tmp_path / "build")), "NAME=D1xD2"
    )


@pytest.mark.parametrize(
    "args,needles",
    [
        (["validate", "caee"], ["unknown model 'caee'", "known: cae, dcgan"]),
        (["validate", "cae", "--backends", "tvm-llvmm"], ["unknown backend 'tvm-llvmm'", "ort-cpu"]),
        (["validate", "cae", "--lowerings", "subpixl"], ["unknown lowering 'subpixl'", "native"]),
        (["bench", "--suite", "huge"], ["unknown suite 'huge'", "default, full, gate, layers, quick"]),
        (["validate", "cae@33"], ["size 33", "multiple of 4"]),
        (["validate", "cae@big"], ["size 'big' is not an integer"]),
        (["bench", "--suite", "quick", "--batches", "0"], ["--batches"]),
        (["report", "/nonexistent/run"], ["not a run directory"]),
    ],
)
def test_bad_names_and_values(args, needles):
    assert_one_line_error(run_cli(*args), *needles)


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(
        run_cli("bench", "--suite", "quick", "--out", str(blocker / "run"), "--build-dir", str(tmp_path / "build")),
        "cannot create",
    )
    assert_one_line_error(
        run_cli("validate", "cae", "--json", str(blocker / "out.json"), "--build-dir", str(tmp_path / "build")),
        "cannot create",
    )
    assert blocker.read_text() == "x"


def test_report_on_a_results_file_from_a_newer_schema(tmp_path):
    import json

    (tmp_path / "run.json").write_text(json.dumps({"schema": 1, "run_id": "x", "plan": {}, "config": {}}))
    (tmp_path / "results.jsonl").write_text(json.dumps({"schema": 2, "case_id": "a/native/ort-cpu/b1"}) + "\n")
    assert_one_line_error(run_cli("report", str(tmp_path)), "schema 2", "newer than this convtx")
    assert not (tmp_path / "report.md").exists()


@pytest.mark.parametrize("command", ["validate", "bench"])
def test_an_invalid_convtranspose_is_bad_input(command, tmp_path):
    """A node the spec forbids (B of 2 values for M = 1, the issue's case): one line naming the file, the node and
    the rule, exit 2, nothing written — which engines accept such nodes is conformance's and fuzz's question."""
    from harness.audit.equivalence import CTConfig, build_model

    cfg = CTConfig("bad", (1, 1, 1, 3), (1, 1, 1, 5), {}, True, False, bias_len=2)
    (tmp_path / "bad.onnx").write_bytes(build_model(cfg).SerializeToString())
    args = [str(tmp_path / "bad.onnx")] if command == "validate" else ["--models", str(tmp_path / "bad.onnx")]
    out = ["--out", str(tmp_path / "run")] if command == "bench" else []
    p = run_cli(command, *args, *out, "--backends", "ort-cpu", "--build-dir", str(tmp_path / "build"))
    assert_one_line_error(p, "bad.onnx", "node 'convt'", "rule bias", "B of shape [2] for M = 1")
    assert not (tmp_path / "run").exists() and not (tmp_path / "build").exists()


def test_lower_never_crashes_on_an_invalid_node(tmp_path):
    """`convtx lower` on zero strides (phase divided by them before) declines the node and says why."""
    from harness.audit.equivalence import CTConfig, build_model

    cfg = CTConfig("z", (1, 1, 3, 3), (1, 1, 3, 3), {"strides": [0, 0]}, False, False)
    (tmp_path / "z.onnx").write_bytes(build_model(cfg).SerializeToString())
    for lowering in ("zero_insert", "phase", "gemm_overlap_add", "gemm_col2im", "explicit_pads"):
        p = run_cli("lower", str(tmp_path / "z.onnx"), "--lowering", lowering, "-o", str(tmp_path / f"{lowering}.onnx"))
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
        assert "declined" in p.stdout + p.stderr and "rule strides" in p.stdout + p.stderr, p.stdout + p.stderr
