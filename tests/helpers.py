"""Shared test helpers, in one module: the repository root, the CLI in a subprocess, the one-line-error check,
hand-built ONNX models and synthetic run directories written by the harness's own writers.

Test files import it relatively (`from ..helpers import run_cli`), so `pytest` and `python -m pytest` import
the tests alike (tests/ is a package; pytest's rootdir is the repository). Fixtures live in tests/conftest.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from harness.core.config import RunConfig, TimingConfig
from harness.core.records import CaseKey, ResultsWriter, write_json_atomic
from harness.measure.timing import latency_of

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m harness ARGS` in a subprocess, as a user would run `convtx`."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str, code: int = 2) -> str:
    """The CLI's bad-input contract (harness/cli/__init__.py `main`): exit status `code`, and stderr exactly one
    line `convtx: error: ...` that names each of `fragments` and carries no traceback. Returns that line."""
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr}"
    line = lines[0]
    assert line.startswith("convtx: error: "), line
    for f in fragments:
        assert f in line, f"{f!r} not named in: {line}"
    return line


# ---- hand-built ONNX models (not by the project's exporter) ----


def convtranspose_model(
    x_shape, w, b=None, *, dim_param: str | None = None, opset: int = 18, relu: bool = False, **attrs
):
    """The one ConvTranspose test graph: X -> ConvTranspose 'ct' (W, and B if given, as initializers)
    [-> Relu] -> Y. `dim_param` names the batch dimension symbolically; `attrs` are the node's attributes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.asarray(w, np.float32), "W")]
    inputs = ["X", "W"]
    if b is not None:
        inits.append(numpy_helper.from_array(np.asarray(b, np.float32), "B"))
        inputs.append("B")
    dims = [dim_param or x_shape[0], *x_shape[1:]]
    nodes = [helper.make_node("ConvTranspose", inputs, ["Y0" if relu else "Y"], name="ct", **attrs)]
    if relu:
        nodes.append(helper.make_node("Relu", ["Y0"], ["Y"]))
    g = helper.make_graph(
        nodes,
        "ct",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, dims)],
        [
            helper.make_tensor_value_info(
                "Y", TensorProto.FLOAT, ["N", "M"] + [f"d{i}" for i in range(len(x_shape) - 2)]
            )
        ],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="hand")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def artifact_of(path: Path, cache_dir: Path | None = None):
    """(ModelArtifact, onnx model) of an ONNX file with its declared input shapes and dtypes."""
    import onnx

    from harness.backends import ModelArtifact
    from harness.core.onnx_io import graph_inputs

    m = onnx.load(str(path))
    specs = graph_inputs(m)
    art = ModelArtifact(
        str(path),
        {s.name: tuple(s.shape) for s in specs},
        {s.name: s.dtype for s in specs},
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    return art, m


def make_convtranspose_model(
    path: Path, x_shape=(1, 4, 5, 5), w_shape=(4, 3, 3, 3), bias=True, dim_param: str | None = None, **attrs
) -> Path:
    """`convtranspose_model` (+bias) -> Relu with seeded weights, saved to `path`."""
    import onnx

    rng = np.random.default_rng(1)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[1] * attrs.get("group", 1)).astype(np.float32) if bias else None
    onnx.save(convtranspose_model(x_shape, w, b, dim_param=dim_param, relu=True, **attrs), str(path))
    return path


def hand_model_two_convtranspose(path: Path) -> Path:
    """X(1x4x6x6) -> ConvTranspose 'up1' (4->8, k4 s2 p1) -> Relu -> ConvTranspose 'up2' (8->3, k2 s2)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 8, 4, 4)).astype(np.float32), "W1"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "B1"),
        numpy_helper.from_array(rng.standard_normal((8, 3, 2, 2)).astype(np.float32), "W2"),
    ]
    nodes = [
        helper.make_node(
            "ConvTranspose",
            ["X", "W1", "B1"],
            ["h"],
            name="up1",
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            kernel_shape=[4, 4],
        ),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("ConvTranspose", ["r", "W2"], ["Y"], name="up2", strides=[2, 2], kernel_shape=[2, 2]),
    ]
    g = helper.make_graph(
        nodes,
        "two",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 3, 24, 24])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def make_col2im_model(path):
    """A model with Col2Im (opset 18), an op TVM 0.27's ONNX frontend has no converter for."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    consts = [
        numpy_helper.from_array(np.array([4, 4], np.int64), "image_shape"),
        numpy_helper.from_array(np.array([2, 2], np.int64), "block_shape"),
    ]
    node = helper.make_node("Col2Im", ["X", "image_shape", "block_shape"], ["Y"])
    g = helper.make_graph(
        [node],
        "col2im",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4, 9])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1, 4, 4])],
        consts,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


# ---- synthetic run directories, written by the harness's own writers ----

MACHINE = {"cpu_model": "Test CPU 9000", "logical_cpus": 2, "flags": ["avx2", "avx512f"]}
CASES = {"m@1/native/ort-cpu/b1": 1.0, "m@1/native/tvm-llvm/b1": 5.0, "m@1/phase/ort-cpu/b1": 2.0}


def write_run(
    path: Path,
    scale: dict[str, float] | None = None,
    machine=MACHINE,
    seed=0,
    status=None,
    machine_speed=1.0,
    n=200,
    noise=0.01,
    ref_ms=0.1,
    threads=2,
    injected=None,
) -> Path:
    """A run directory as `convtx bench` writes it: lognormal-ish samples around each case's latency,
    multiplied by `scale[case]` and by `machine_speed` (which slows the reference kernel alike)."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    meta = {
        "schema": 1,
        "run_id": path.name,
        "suite": "quick",
        "status": "complete",
        "machine": machine,
        "versions": {"onnxruntime": "1.32.0"},
        "commit": "abc",
        "date": "2026-11-23T00:00:00Z",
        "plan": {},
        "config": RunConfig(
            threads=threads,
            timing=TimingConfig(warmup=2),
            inject_slowdown=tuple((glob, float(pct)) for glob, pct in injected or ()),
        ).to_json(),
    }
    write_json_atomic(path / "run.json", meta)
    with ResultsWriter(path / "results.jsonl") as w:
        for cid, ms in CASES.items():
            st = (status or {}).get(cid, "ok")
            latency = None
            if st in ("ok", "mismatch"):
                f = (scale or {}).get(cid, 1.0) * machine_speed
                s = ms * f * np.exp(rng.normal(0, noise, n))
                ref = ref_ms * machine_speed * np.exp(rng.normal(0, noise, n))
                latency = latency_of(s, ref)
            w.append(
                case_key(path.name, cid, threads).record(st, "" if st == "ok" else f"{st} here", latency_ms=latency)
            )
    return path


def case_key(run_id: str, cid: str, threads: int) -> CaseKey:
    """The key of a synthetic case `model@size/lowering/backend/bN`."""
    model, lowering, backend, batch = cid.split("/")
    name, _, size = model.partition("@")
    return CaseKey(
        run_id=run_id,
        case_id=cid,
        model=name,
        lowering=lowering,
        backend=backend,
        batch=int(batch[1:]),
        input_shapes={"x": (int(batch[1:]), 3, 8, 8)},
        size=int(size),
        threads=threads,
    )


def write_rounds(path: Path, rounds=5, seed=0, **kw) -> Path:
    for i in range(rounds):
        write_run(path / f"round-{i + 1:02d}", seed=seed * 100 + i, **kw)
    return path


# ---- hypothesis strategies over the ConvTranspose attribute space ----


@st.composite
def ct_configs(draw, name: str = "h"):
    """A valid ConvTranspose configuration (harness.audit.equivalence.CTConfig) drawn attribute by attribute:
    rank 1-3, group dividing both channel counts, kernel, strides, dilations, asymmetric pads, output_padding
    < max(stride, dilation), or instead auto_pad / output_shape, bias, symbolic batch. Every choice shrinks
    toward the smallest node (rank 1, one channel, kernel 1, stride 1, no padding), so a failure is reported
    on the simplest configuration that still shows it. Configurations `resolve` refuses are rejected."""
    from harness.audit.equivalence import CTConfig
    from harness.core.convtranspose import resolve

    nd = draw(st.integers(1, 3), label="rank")
    group = draw(st.integers(1, 3), label="group")
    cg = draw(st.integers(1, 3), label="in channels per group")
    mg = draw(st.integers(1, 2), label="out channels per group")
    axis = st.lists  # one value per spatial axis
    k = draw(axis(st.integers(1, 4 if nd < 3 else 3), min_size=nd, max_size=nd), label="kernel")
    s = draw(axis(st.integers(1, 3), min_size=nd, max_size=nd), label="strides")
    d = draw(axis(st.integers(1, 3), min_size=nd, max_size=nd), label="dilations")
    insp = draw(axis(st.integers(1, {1: 8, 2: 6, 3: 3}[nd]), min_size=nd, max_size=nd), label="input spatial")
    batch = draw(st.integers(1, 2), label="batch")
    attrs: dict = {"strides": s, "group": group}
    if d != [1] * nd or draw(st.booleans(), label="explicit dilations"):
        attrs["dilations"] = d
    if draw(st.booleans(), label="kernel_shape given"):
        attrs["kernel_shape"] = k
    mode = draw(st.sampled_from(["none", "pads", "auto_pad", "output_shape"]), label="padding")
    if mode == "pads":
        attrs["pads"] = draw(axis(st.integers(0, 2), min_size=2 * nd, max_size=2 * nd), label="pads")
    elif mode == "auto_pad":
        attrs["auto_pad"] = draw(st.sampled_from(["VALID", "SAME_UPPER", "SAME_LOWER"]), label="auto_pad")
    elif mode == "output_shape":
        full = [si * (i - 1) + di * (ki - 1) + 1 for si, i, di, ki in zip(s, insp, d, k)]
        off = draw(axis(st.integers(-3, 2), min_size=nd, max_size=nd), label="output_shape - full")
        attrs["output_shape"] = [max(1, f + o) for f, o in zip(full, off)]
    if mode != "none" and draw(st.booleans(), label="output_padding given"):
        attrs["output_padding"] = [
            draw(st.integers(0, max(si, di) - 1), label="output_padding") for si, di in zip(s, d)
        ]
    c = group * cg
    cfg = CTConfig(
        name,
        (batch, c, *insp),
        (c, mg, *k),
        attrs,
        draw(st.booleans(), label="bias"),
        draw(st.booleans(), label="symbolic batch"),
    )
    try:
        resolve(attrs, cfg.x_shape, cfg.w_shape)
    except ValueError:
        assume(False)
    return cfg


# ---- the ledger's reproducers (docs/upstream/, their verdict in docs/upstream/_verdict.py) ----


class BugStillPresent(Exception):
    """A ledger reproducer showed its upstream bug (exit 0, REPRODUCED): the ledger test's expected failure."""


VERDICTS = {"REPRODUCED": 0, "FIXED": 1, "CANNOT RUN": 2}  # marker -> exit status (docs/upstream/_verdict.py)


def run_reproducer(script: str, timeout: float = 600) -> tuple[str, subprocess.CompletedProcess]:
    """Run the reproducer `script` (a repository path, docs/upstream/*.py) standalone and return its verdict,
    "REPRODUCED", "FIXED" or "CANNOT RUN", with the process. Anything else — a traceback, no marker line, two
    of them, or an exit status that is not the marker's — is a broken reproducer: AssertionError."""
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    p = subprocess.run(
        [sys.executable, str(ROOT / script)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )
    seen = f"{script}: exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    markers = [ln for ln in p.stdout.splitlines() if ln.split(":")[0] in VERDICTS]
    assert len(markers) == 1, f"broken reproducer: expected one verdict line, got {len(markers)}; {seen}"
    verdict = markers[0].split(":")[0]
    assert p.returncode == VERDICTS[verdict], f"broken reproducer: {verdict} with the wrong exit status; {seen}"
    assert "Traceback" not in p.stderr, f"broken reproducer: {seen}"
    return verdict, p


# The core fields of a result record, as docs/design.md ("A result record") documents them.
DESIGN_RECORD_KEYS = {
    "schema",
    "run_id",
    "case_id",
    "model",
    "lowering",
    "backend",
    "batch",
    "input_shapes",
    "dtype",
    "status",
    "reason",
    "numerics",
    "latency_ms",
    "compile_s",
    "flops",
    "gflops",
}
