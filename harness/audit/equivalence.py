"""Seeded random ConvTranspose configurations over the whole attribute space, each run through every
lowering on every backend and judged against the float64 spec reference.

`python -m harness.audit.equivalence --configs 500 --out DIR` (`make equivalence`) writes DIR/models/*.onnx,
DIR/configs.json, DIR/results.jsonl (the usual records) and DIR/summary.{md,json}: per lowering x backend
the number of configurations that passed, failed, failed as a known divergence (harness.checking.known), or were
skipped (with the reasons). Cases run isolated through the sweep driver, so an engine crash costs one case.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness.core import safefs
from harness.core.convtranspose import resolve
from harness.core.records import Record


@dataclass(frozen=True)
class CTConfig:
    """One ConvTranspose model: shapes, attributes (ONNX names) and how the batch is declared."""

    name: str
    x_shape: tuple[int, ...]  # N x C x D...
    w_shape: tuple[int, ...]  # C x M/group x K...
    attrs: dict
    bias: bool
    symbolic_batch: bool
    bias_len: int | None = None  # B's length when it is not M (an invalid node, made on purpose)

    @property
    def nd(self) -> int:
        return len(self.x_shape) - 2

    @property
    def b_shape(self) -> tuple[int, ...] | None:
        if not self.bias:
            return None
        return (self.w_shape[1] * self.attrs.get("group", 1) if self.bias_len is None else self.bias_len,)


def random_config(rng: np.random.Generator, name: str) -> CTConfig:
    """A valid configuration (non-empty output, output_padding < stride) drawn over the attribute space;
    degenerate sizes (input 1, kernel 1) and kernels smaller than the stride included."""
    while True:
        nd = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
        group = int(rng.choice([1, 1, 2, 3]))
        depthwise = group > 1 and rng.random() < 0.3
        cg = 1 if depthwise else int(rng.integers(1, 4))
        mg = int(rng.integers(1, 3)) if not depthwise else 1
        c = group * cg
        k = [int(v) for v in rng.integers(1, 5 if nd < 3 else 4, nd)]
        s = [int(v) for v in rng.integers(1, 4, nd)]
        d = [int(v) for v in rng.choice([1, 1, 2, 3], nd)]
        hi = {1: 9, 2: 7, 3: 4}[nd]
        insp = [int(v) for v in rng.integers(1, hi, nd)]
        batch = int(rng.choice([1, 2]))
        attrs: dict = {"strides": s, "group": group}
        if rng.random() < 0.6:
            attrs["dilations"] = d
        else:
            d = [1] * nd
        if rng.random() < 0.5:
            attrs["kernel_shape"] = k
        mode = rng.choice(["pads", "pads", "auto", "output_shape", "none"])
        if mode == "pads":
            attrs["pads"] = [int(v) for v in rng.integers(0, 3, 2 * nd)]
            if rng.random() < 0.5:
                attrs["output_padding"] = [int(rng.integers(0, si)) for si in s]
        elif mode == "auto":
            attrs["auto_pad"] = str(rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID"]))
            if rng.random() < 0.3:
                attrs["output_padding"] = [int(rng.integers(0, si)) for si in s]
        elif mode == "output_shape":
            full = [si * (i - 1) + di * (ki - 1) + 1 for si, i, di, ki in zip(s, insp, d, k)]
            attrs["output_shape"] = [max(1, f + int(rng.integers(-3, 3))) for f in full]
            if rng.random() < 0.3:
                attrs["output_padding"] = [int(rng.integers(0, si)) for si in s]
        cfg = CTConfig(name, (batch, c, *insp), (c, mg, *k), attrs, bool(rng.random() < 0.6), bool(rng.random() < 0.2))
        try:
            resolve(attrs, cfg.x_shape, cfg.w_shape)
        except ValueError:
            continue
        return cfg


def build_model(cfg: CTConfig, seed: int = 0):
    """ConvTranspose (weights and bias as initializers) in an opset-18 model; batch symbolic if asked."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.standard_normal(cfg.w_shape).astype(np.float32), "W")]
    inputs = ["X", "W"]
    if cfg.bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(cfg.b_shape).astype(np.float32), "B"))
        inputs.append("B")
    x_dims = ["N" if cfg.symbolic_batch else cfg.x_shape[0], *cfg.x_shape[1:]]
    try:
        p = resolve(cfg.attrs, cfg.x_shape, cfg.w_shape, cfg.b_shape)
        y_dims = [x_dims[0], cfg.w_shape[1] * p.group, *p.output_spatial]
    except ValueError:  # an invalid model (the fuzzer makes some on purpose): leave its output shape open
        y_dims = [x_dims[0], "m"] + [f"d{i}" for i in range(cfg.nd)]
    node = helper.make_node("ConvTranspose", inputs, ["Y"], name="convt", **cfg.attrs)
    graph = helper.make_graph(
        [node],
        cfg.name,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_dims)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, y_dims)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="convtx-equivalence")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def classify(rec: Record, cfg: CTConfig) -> tuple[str, str]:
    """(outcome, detail): passed | failed | known | skipped | error."""
    from harness.checking.known import match

    if rec.status == "ok":
        return "passed", ""
    if rec.status == "skipped":
        return "skipped", rec.reason
    entry = match(rec.backend, rec.lowering, cfg.attrs, resolve(cfg.attrs, cfg.x_shape, cfg.w_shape))
    if entry is not None:
        return "known", entry.id
    return ("failed" if rec.status == "mismatch" else "error"), rec.reason


def summarise(configs: dict[str, CTConfig], records: list[Record]) -> dict:
    from harness.checking.known import LEDGER, match

    table: dict[tuple[str, str], Counter] = defaultdict(Counter)
    reasons: dict[tuple[str, str], Counter] = defaultdict(Counter)
    examples: dict[tuple[str, str, str], str] = {}
    known_hits: Counter = Counter()
    known_matches_passing: Counter = Counter()
    for rec in records:
        cfg = configs[rec.model]
        key = (rec.lowering, rec.backend)
        outcome, detail = classify(rec, cfg)
        table[key][outcome] += 1
        if outcome == "known":
            known_hits[detail] += 1
        elif outcome == "passed":
            entry = match(rec.backend, rec.lowering, cfg.attrs, resolve(cfg.attrs, cfg.x_shape, cfg.w_shape))
            if entry is not None:
                known_matches_passing[entry.id] += 1
        if outcome in ("failed", "error", "skipped"):
            short = detail[:160]
            reasons[key][f"{outcome}: {short}"] += 1
            examples.setdefault((*key, outcome), rec.model)
    stale = [e.id for e in LEDGER if e.always and known_matches_passing[e.id]]
    return {
        "configs": len(configs),
        "table": [
            {"lowering": lw, "backend": b, **{o: c[o] for o in ("passed", "failed", "known", "skipped", "error")}}
            for (lw, b), c in sorted(table.items())
        ],
        "reasons": {f"{lw}/{b}": dict(c.most_common(8)) for (lw, b), c in sorted(reasons.items())},
        "examples": {"/".join(k): v for k, v in sorted(examples.items())},
        "known_hits": dict(known_hits),
        "known_matched_but_passed": dict(known_matches_passing),
        "stale_strict_entries": stale,
        "dims": dict(Counter(c.nd for c in configs.values())),
    }


def render_summary(s: dict) -> str:
    L = [
        f"# ConvTranspose lowering equivalence: {s['configs']} random configurations",
        "",
        f"Spatial dims: {s['dims']}. Reference: float64 scatter definition of the ONNX spec.",
        "",
        "| lowering | backend | passed | failed | known divergence | skipped | error |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in s["table"]:
        L.append(
            f"| {r['lowering']} | {r['backend']} | {r['passed']} | {r['failed']} | {r['known']} | "
            f"{r['skipped']} | {r['error']} |"
        )
    L += ["", "## Known divergences hit (harness/checking/known.py)", ""]
    L += [f"- `{k}`: {v} cases" for k, v in sorted(s["known_hits"].items())] or ["- none"]
    if s["stale_strict_entries"]:
        L += ["", f"**Stale strict ledger entries** (matched a passing case): {s['stale_strict_entries']}"]
    if s["reasons"]:
        L += ["", "## Other outcomes, by reason", ""]
        for key, rs in s["reasons"].items():
            for reason, n in rs.items():
                L.append(f"- {key}: {n} × {reason}")
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    from harness.core.config import RunConfig
    from harness.core.errors import ConvtxError
    from harness.core.records import ResultsWriter
    from harness.lowerings import LOWERINGS
    from harness.pipeline.sweep import Plan, file_ref, run_plan

    ap = argparse.ArgumentParser(prog="python -m harness.audit.equivalence", description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backends", default="ort-cpu,tvm-llvm")
    ap.add_argument("--lowerings", default=",".join(LOWERINGS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="build/equivalence")
    args = ap.parse_args(argv)
    try:
        backends = tuple(b for b in args.backends.split(",") if b)
        lowerings = tuple(lw for lw in args.lowerings.split(",") if lw)
        out = Path(args.out)
        (out / "models").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(args.seed)
        configs: dict[str, CTConfig] = {}
        refs = []
        import onnx

        for i in range(args.configs):
            cfg = random_config(rng, f"ct{i:04d}")
            configs[cfg.name] = cfg
            path = out / "models" / f"{cfg.name}.onnx"
            onnx.save(build_model(cfg, seed=args.seed + i), str(path))
            shapes = {"X": cfg.x_shape} if cfg.symbolic_batch else {}
            refs.append(file_ref(str(path), shapes))
        safefs.write_atomic(out / "configs.json", json.dumps({n: asdict(c) for n, c in configs.items()}, indent=1))
        plan = Plan(tuple(refs), lowerings, backends, (1,))
        results = out / "results.jsonl"
        results.unlink(missing_ok=True)
        cfg_run = RunConfig(threads=args.threads, timing=None, case_timeout_s=300)
        with ResultsWriter(results) as w:
            records = run_plan(
                plan,
                cfg_run,
                "equivalence",
                Path("build"),
                out / "logs",
                sink=w.append,
                say=lambda s: None if "preparing" in s else print(s, file=sys.stderr),
            )
        s = summarise(configs, records)
        safefs.write_atomic(out / "summary.json", json.dumps(s, indent=2))
        safefs.write_atomic(out / "summary.md", render_summary(s))
        print(render_summary(s))
        bad = sum(r["failed"] + r["error"] for r in s["table"])
        return 1 if bad or s["stale_strict_entries"] else 0
    except ConvtxError as e:
        print(f"equivalence: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
