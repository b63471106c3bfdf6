"""Differential fuzzing of ConvTranspose: seeded random models over the whole attribute space, every
engine x lowering judged against the float64 spec reference, failures grouped into divergence classes.

A failing case is classified by what went wrong (its *kind*: wrong shape, wrong values, engine error or
crash on a valid model, engine rejects a valid model, engine accepts an invalid one, internal error or
crash on an invalid one) and shrunk — attributes dropped, axes removed, sizes reduced while the same kind of
failure persists — so that the attributes left are the ones involved. Each class keeps its smallest case
as a standalone reproducer (`<id>.onnx`, `<id>.npz`, `<id>.py`). Every class must be explained by the
ledger (harness/checking/known.py); an unexplained class fails the run.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harness.audit.equivalence import CTConfig, build_model, random_config
from harness.audit.invalid import random_invalid
from harness.core import safefs
from harness.core.convtranspose import RULES, resolve, rule_broken


@dataclass(frozen=True)
class FuzzConfig:
    cfg: CTConfig
    valid: bool  # the spec allows it (the reference computes it)
    edge: str = ""  # which edge family it was drawn from, "" for an ordinary one
    rule: str | None = None  # invalid: the first rule of RULES (harness/core/convtranspose.py) it breaks


def validity(cfg: CTConfig) -> bool:
    return rule_of(cfg) is None


def rule_of(cfg: CTConfig) -> str | None:
    """The first spec rule the configuration breaks (the one shared validation), None when it is valid."""
    return rule_broken(cfg.attrs, cfg.x_shape, cfg.w_shape, cfg.b_shape)


def judged(cfg: CTConfig, edge: str = "") -> FuzzConfig:
    rule = rule_of(cfg)
    return FuzzConfig(cfg, rule is None, edge, rule)


def edge_config(rng: np.random.Generator, name: str) -> CTConfig:
    """The edge the spec text leaves to readers: output_padding >= stride, legal when the dilation is larger."""
    base = random_config(rng, name)
    nd = base.nd
    a = {k: v for k, v in base.attrs.items() if k not in ("output_shape", "auto_pad", "output_padding")}
    s = list(a["strides"])
    ax = int(rng.integers(0, nd))
    d = list(a.get("dilations", [1] * nd))
    d[ax] = s[ax] + 1
    a["dilations"] = d
    a["output_padding"] = [s[i] if i == ax else 0 for i in range(nd)]
    return replace(base, attrs=a)


def fuzz_config(rng: np.random.Generator, name: str) -> FuzzConfig:
    """An ordinary valid configuration (80%), the output_padding edge (5%), or one breaking a spec rule, every rule
    of RULES equally likely (15%: harness/audit/invalid.py's mutations)."""
    r = rng.random()
    if r < 0.05:
        return judged(edge_config(rng, name), "edge")
    if r < 0.20:
        cfg, _ = random_invalid(rng, name)
        return judged(cfg, "invalid")
    return judged(random_config(rng, name))


def features(cfg: CTConfig) -> tuple[str, ...]:
    """The attributes a configuration uses beyond the defaults (what a class is described by)."""
    a, nd = cfg.attrs, cfg.nd
    f = [f"{nd}d"]
    if a.get("group", 1) > 1:
        f.append("group")
    if any(d > 1 for d in a.get("dilations", [1] * nd)):
        f.append("dilations")
    if any(s > 1 for s in a.get("strides", [1] * nd)):
        f.append("strides")
    pads = a.get("pads") or [0] * 2 * nd
    if any(pads):
        f.append("pads" if pads[:nd] == pads[nd:] else "asymmetric_pads")
    op = a.get("output_padding") or [0] * nd
    if any(op):
        f.append("output_padding")
        if any(o >= s for o, s in zip(op, a.get("strides", [1] * nd))):
            f.append("output_padding>=stride")
    if a.get("output_shape"):
        f.append("output_shape")
    if a.get("auto_pad", "NOTSET") != "NOTSET":
        f.append(f"auto_pad={a['auto_pad']}")
    rule = rule_of(cfg)
    if rule is None:
        p = resolve(a, cfg.x_shape, cfg.w_shape, cfg.b_shape)
        if any(b + e < 0 for b, e in zip(p.pads_begin, p.pads_end)):
            f.append("negative_total_padding")
    else:
        f.append(f"invalid:{rule}")
    if cfg.bias:
        f.append("bias")
    if cfg.x_shape[0] > 1:
        f.append("batch>1")
    if cfg.symbolic_batch:
        f.append("symbolic_batch")
    return tuple(f)


# ------------------------------------------------------------------------------------------------ running


def kind_of(status: str, reason: str, valid: bool) -> str:
    """What went wrong, from the record; "ok" when nothing did (an invalid model cleanly refused is ok)."""
    if status == "skipped" and reason.startswith("built, not run"):
        return "not_run"  # compiled (a compile failure is a finding), but no device to judge it on
    died = "killed by signal" in reason or "exited with status" in reason or "timed out" in reason
    internal = any(t in reason for t in ("InternalError", "Check failed", "bad_alloc", "TVMError"))
    if not valid:
        if status in ("ok", "mismatch"):
            return "accepts_invalid"
        if died:
            return "crash_on_invalid"
        return "internal_error_on_invalid" if internal else "ok"
    if status == "ok" or status == "skipped":
        return "ok"
    if status == "mismatch":
        return "wrong_shape" if "shape [" in reason or "outputs, reference has" in reason else "wrong_values"
    if died:
        return "crash"
    return "internal_error" if internal else "rejects_valid"


class Fuzzer:
    """Runs single cases in warm, isolated workers (one per backend)."""

    def __init__(self, out: Path, build_dir: Path, cfg):
        from harness.backends import BACKENDS
        from harness.pipeline.worker import WorkerClient

        self.out, self.build_dir, self.cfg = out, build_dir, cfg
        cap = int(cfg.memory_cap_gib * 2**30) if cfg.memory_cap_gib else None
        self.workers = {
            b: WorkerClient(b, BACKENDS[b].worker_env(cfg), out / "logs" / f"worker-{b}.log", cap)
            for b in BACKENDS
            if not BACKENDS[b].zoo_only
        }
        (out / "models").mkdir(parents=True, exist_ok=True)

    def prepare(self, fc: FuzzConfig, seed: int):
        """The model file, its inputs and (valid models) float64 reference, as the sweep's Prepared."""
        import onnx

        from harness.checking.reference import onnx_reference
        from harness.pipeline.prepare import ModelRef, prepared_from_arrays

        model = build_model(fc.cfg, seed=seed)
        path = self.out / "models" / f"{fc.cfg.name}.onnx"
        onnx.save(model, str(path))
        x = np.random.default_rng(seed + 1).standard_normal(fc.cfg.x_shape).astype(np.float32)
        refs = onnx_reference(model, {"X": x}) if fc.valid else []
        ref = ModelRef(fc.cfg.name, path=str(path.resolve()), shapes=(("X", fc.cfg.x_shape),))
        return prepared_from_arrays(
            ref,
            fc.cfg.x_shape[0],
            model,
            str(path.resolve()),
            {"X": x},
            refs,
            self.out / "models" / f"{fc.cfg.name}.npz",
            "float64 spec reference" if fc.valid else f"none: invalid (rule {fc.rule}: {RULES[fc.rule]})",
        )

    def run(self, fc: FuzzConfig, backend: str, lowering: str, seed: int):
        from harness.pipeline.case import case_key
        from harness.pipeline.sweep import run_case_isolated

        prep = self.prepare(fc, seed)
        key = case_key(prep, lowering, backend, self.cfg, "fuzz")
        rec = run_case_isolated(self.workers[backend], prep, lowering, backend, self.cfg, "fuzz", self.build_dir, key)
        return kind_of(rec.status, rec.reason, fc.valid), rec

    def close(self) -> None:
        for w in self.workers.values():
            w.close()


# ---------------------------------------------------------------------------------------------- shrinking


def _drop_axis(cfg: CTConfig, ax: int) -> CTConfig | None:
    nd = cfg.nd
    if nd < 2:
        return None
    a = dict(cfg.attrs)
    for k in ("strides", "dilations", "output_padding", "kernel_shape", "output_shape"):
        if k in a:
            a[k] = [v for i, v in enumerate(a[k]) if i != ax]
    if "pads" in a:
        a["pads"] = [v for i, v in enumerate(a["pads"]) if i % nd != ax]
    drop = 2 + ax
    return replace(
        cfg,
        x_shape=cfg.x_shape[:drop] + cfg.x_shape[drop + 1 :],
        w_shape=cfg.w_shape[:drop] + cfg.w_shape[drop + 1 :],
        attrs=a,
    )


def _candidates(cfg: CTConfig):
    a, nd = cfg.attrs, cfg.nd
    for ax in range(nd):
        yield _drop_axis(cfg, ax)
    if cfg.symbolic_batch:
        yield replace(cfg, symbolic_batch=False)
    if cfg.x_shape[0] > 1:
        yield replace(cfg, x_shape=(1,) + cfg.x_shape[1:])
    if cfg.bias:
        yield replace(cfg, bias=False)
    g = a.get("group", 1)
    if g > 1:
        cg, mg = cfg.w_shape[0] // g, cfg.w_shape[1]
        yield replace(
            cfg,
            x_shape=(cfg.x_shape[0], cg) + cfg.x_shape[2:],
            w_shape=(cg, mg) + cfg.w_shape[2:],
            attrs={**a, "group": 1},
        )
    elif cfg.w_shape[0] > 1 or cfg.w_shape[1] > 1:
        yield replace(cfg, x_shape=(cfg.x_shape[0], 1) + cfg.x_shape[2:], w_shape=(1, 1) + cfg.w_shape[2:])
    for k in ("kernel_shape", "output_shape", "auto_pad", "output_padding", "pads", "dilations"):
        if k in a:
            yield replace(cfg, attrs={kk: v for kk, v in a.items() if kk != k})
    for ax in range(nd):
        for key, lo in (("strides", 1), ("dilations", 1)):
            if key in a and a[key][ax] > lo:
                v = list(a[key])
                v[ax] -= 1
                yield replace(cfg, attrs={**a, key: v})
        if cfg.w_shape[2 + ax] > 1:
            w = list(cfg.w_shape)
            w[2 + ax] -= 1
            aa = {kk: v for kk, v in a.items() if kk != "kernel_shape"}
            yield replace(cfg, w_shape=tuple(w), attrs=aa)
        if cfg.x_shape[2 + ax] > 1:
            x = list(cfg.x_shape)
            x[2 + ax] -= 1
            yield replace(cfg, x_shape=tuple(x))


def size_of(cfg: CTConfig) -> int:
    return math.prod(cfg.x_shape) + math.prod(cfg.w_shape) + len(json.dumps(cfg.attrs))


def shrink(
    fz: Fuzzer, fc: FuzzConfig, backend: str, lowering: str, kind: str, seed: int, budget: int = 60
) -> FuzzConfig:
    """Greedy: keep any simplification that still fails the same way, until none does (or the budget)."""
    tries = 0
    improved = True
    while improved and tries < budget:
        improved = False
        for cand in _candidates(fc.cfg):
            if cand is None or tries >= budget:
                continue
            cfc = judged(cand, fc.edge)
            if cfc.valid != fc.valid or cfc.rule != fc.rule:  # an invalid case stays invalid by the same rule
                continue
            tries += 1
            try:
                k, _ = fz.run(cfc, backend, lowering, seed)
            except Exception:  # noqa: BLE001 — a candidate we cannot even build is no simplification
                continue
            if k == kind:
                fc, improved = cfc, True
                break
    return fc


# ----------------------------------------------------------------------------------------------- reporting

_SNIPPET = {
    "ort-cpu": (
        "import onnxruntime as ort\n"
        'y = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]\n'
    ),
    "tvm-llvm": (
        "import tvm\nfrom tvm import relax\nfrom tvm.relax.frontend.onnx import from_onnx\n"
        'mod = from_onnx(onnx.load(model_path), shape_dict={"X": list(x.shape)})\n'
        'vm = relax.VirtualMachine(relax.build(mod, target="llvm"), tvm.cpu())\n'
        'y = vm["main"](tvm.runtime.tensor(x)).numpy()\n'
    ),
    "openvino-cpu": (
        "import openvino as ov\n"
        "core = ov.Core()\n"
        'compiled = core.compile_model(core.read_model(model_path), "CPU", '
        '{"INFERENCE_PRECISION_HINT": "f32"})\n'
        "y = compiled({0: x})[compiled.output(0)]\n"
    ),
}


def write_reproducer(
    out: Path,
    class_id: str,
    fz: Fuzzer,
    fc: FuzzConfig,
    backend: str,
    lowering: str,
    kind: str,
    attributes: tuple[str, ...],
    seed: int,
) -> str:
    """<id>.onnx (the model exactly as the engine got it, lowering applied), <id>.npz, <id>.py."""
    import shutil

    import onnx

    from harness.lowerings import get_lowering

    prep = fz.prepare(fc, seed)
    model = get_lowering(lowering).apply(onnx.load(prep.onnx_path)).model
    onnx.save(model, str(out / f"{class_id}.onnx"))
    shutil.copy(prep.data_path, out / f"{class_id}.npz")
    expected = (
        "the float64 spec reference is in data['ref:0']"
        if fc.valid
        else f"the model is invalid under the ONNX spec (rule {fc.rule}: {RULES[fc.rule]}): an engine should refuse it"
    )
    safefs.write_atomic(
        out / f"{class_id}.py",
        f'"""convtx fuzz reproducer {class_id}: {backend}, lowering {lowering}: {kind}.\n'
        f"Attributes involved: {', '.join(attributes)}.\nConvTranspose: x {list(fc.cfg.x_shape)}, "
        f'w {list(fc.cfg.w_shape)}, {json.dumps(fc.cfg.attrs)}, bias {list(fc.cfg.b_shape or []) or None}.\n{expected}."""\n'
        f"from pathlib import Path\n\nimport numpy as np\nimport onnx\n\n"
        f'here = Path(__file__).parent\nmodel_path = str(here / "{class_id}.onnx")\n'
        f'data = np.load(here / "{class_id}.npz")\nx = data["in:X"]\n'
        f"{_SNIPPET.get(backend, '')}"
        f'print("engine output shape", y.shape)\n'
        f'if "ref:0" in data.files:\n    ref = data["ref:0"]\n    print("reference shape   ", ref.shape)\n'
        f"    if ref.shape == y.shape:\n"
        f"        same = np.isnan(y) & np.isnan(ref) | (y == ref)  # NaN/Inf where the reference has the same: agreement\n"
        f'        print("elements NaN/Inf where the reference is not, or differing where it is NaN/Inf:",\n'
        f"              int(np.count_nonzero(~same & ~(np.isfinite(y) & np.isfinite(ref)))))\n"
        f"        fin = np.isfinite(y) & np.isfinite(ref)\n"
        f'        print("max |engine - reference| where both are finite", float(np.abs(y - ref)[fin].max(initial=0.0)))\n',
    )
    return f"{class_id}.py"


def run_fuzz(
    cases: int,
    seed: int,
    backends: list[str],
    lowerings: list[str],
    out: Path,
    build_dir: Path,
    shrink_budget: int = 40,
    say=lambda s: print(s, file=sys.stderr),
) -> dict:
    """Fuzz until `cases` engine cases ran; write out/summary.{json,md} and the reproducers."""
    from harness.checking.known import match
    from harness.core.config import RunConfig

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    fz = Fuzzer(out, build_dir, RunConfig(threads=1, timing=None, case_timeout_s=120, memory_cap_gib=8))
    t0 = time.monotonic()
    n_configs = max(1, cases // (len(backends) * len(lowerings)))
    classes: dict[tuple, dict] = {}
    coarse: dict[tuple, tuple] = {}
    n = fails = 0
    not_run: dict[str, dict] = {}
    invalid: dict[str, dict[str, dict[str, int]]] = {}  # backend -> rule -> counts (native cases)
    lowered_invalid: list[str] = []  # a lowering that rewrote an invalid node: a convtx bug
    try:
        for i in range(n_configs):
            fc = fuzz_config(rng, f"fz{i:05d}")
            for lw in lowerings:
                for b in backends:
                    kind, rec = fz.run(fc, b, lw, seed + i)
                    n += 1
                    if not fc.valid:
                        if lw == "native":  # what the engine itself does with the node
                            row = invalid.setdefault(b, {}).setdefault(fc.rule, dict.fromkeys(_INVALID_COLS, 0))
                            row["cases"] += 1
                            row[kind if kind in row else "refused"] += 1
                        elif (rec.details or {}).get("lowering", {}).get("lowered"):
                            lowered_invalid.append(f"{fc.cfg.name} ({fc.rule}): {lw}")
                    if kind == "not_run":
                        nr = not_run.setdefault(b, {"count": 0, "output_padding": 0, "reason": rec.reason})
                        nr["count"] += 1
                        nr["output_padding"] += "output_padding" in features(fc.cfg)
                        continue
                    if kind == "ok":
                        continue
                    fails += 1
                    key0 = (b, lw, kind, features(fc.cfg))
                    if key0 not in coarse:
                        small = shrink(fz, fc, b, lw, kind, seed + i, shrink_budget)
                        key = (b, lw, kind, features(small.cfg))
                        coarse[key0] = key
                        c = classes.setdefault(
                            key, {"count": 0, "smallest": small, "seed": seed + i, "example_reason": rec.reason[:300]}
                        )
                        if size_of(small.cfg) < size_of(c["smallest"].cfg):
                            c["smallest"], c["seed"] = small, seed + i
                    classes[coarse[key0]]["count"] += 1
            if (i + 1) % 100 == 0:
                say(f"{n} cases, {fails} failing, {len(classes)} classes, {time.monotonic() - t0:.0f} s")
        rows = []
        for idx, ((b, lw, kind, attrs), c) in enumerate(sorted(classes.items())):
            cid = f"class{idx:02d}-{b}-{lw}-{kind}"
            small: FuzzConfig = c["smallest"]
            p = (
                resolve(small.cfg.attrs, small.cfg.x_shape, small.cfg.w_shape, small.cfg.b_shape)
                if small.valid
                else None
            )
            entry = match(b, lw, small.cfg.attrs, p, kind, small.rule)
            if entry is None and small.valid:  # a pattern the node's attributes alone do not show (its shapes)
                from harness.audit.equivalence import build_model
                from harness.checking.known import graph_matches

                entry = next(iter(graph_matches(b, lw, build_model(small.cfg))), None)
            rows.append(
                {
                    "backend": b,
                    "lowering": lw,
                    "class": kind,
                    "attributes": list(attrs),
                    "count": c["count"],
                    "reproducer": write_reproducer(out, cid, fz, small, b, lw, kind, attrs, c["seed"]),
                    "explained_by": entry.id if entry else None,
                    "example_reason": c["example_reason"],
                }
            )
    finally:
        fz.close()
    summary = {
        "cases": n,
        "configs": n_configs,
        "failing_cases": fails,
        "seconds": round(time.monotonic() - t0),
        "backends": backends,
        "lowerings": lowerings,
        "classes": rows,
        "built_not_run": not_run,
        "unexplained": [r["reproducer"] for r in rows if not r["explained_by"]],
        "invalid_by_rule": invalid,
        "lowerings_that_rewrote_invalid_nodes": lowered_invalid,
    }
    safefs.write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    safefs.write_atomic(out / "summary.md", render(summary))
    return summary


_INVALID_COLS = ("cases", "accepts_invalid", "internal_error_on_invalid", "crash_on_invalid", "refused")


def render(s: dict) -> str:
    L = [
        f"# Fuzz: {s['cases']} cases ({s['configs']} ConvTranspose models × {', '.join(s['backends'])} × "
        f"{', '.join(s['lowerings'])}) in {s['seconds']} s",
        "",
        f"{s['failing_cases']} failing cases in {len(s['classes'])} classes.",
        "",
    ]
    for b, nr in (s.get("built_not_run") or {}).items():
        L += [
            f"{b}: {nr['count']} cases compiled but not run — {nr['reason']} (their values are unjudged; "
            f"{nr['output_padding']} have output_padding > 0). Run the same command on a GPU machine.",
            "",
        ]
    L += [
        "| class | engine | lowering | attributes involved | count | reproducer | ledger |",
        "|---|---|---|---|---:|---|---|",
    ]
    for r in s["classes"]:
        L.append(
            f"| {r['class']} | {r['backend']} | {r['lowering']} | {', '.join(r['attributes'])} | {r['count']} | "
            f"`{r['reproducer']}` | {r['explained_by'] or '**unexplained**'} |"
        )
    inv = s.get("invalid_by_rule") or {}
    if inv:
        engines = sorted(inv)
        L += [
            "",
            "## Invalid nodes, by the spec rule they break (native: the engine's own ConvTranspose)",
            "",
            "Each cell: accepted (returned a tensor) / failed inside (internal error or crash) / of cases. An engine "
            "should refuse every one; the lowerings decline them all"
            + (
                "."
                if not s.get("lowerings_that_rewrote_invalid_nodes")
                else f" — **but rewrote {len(s['lowerings_that_rewrote_invalid_nodes'])}**."
            ),
            "",
            "| rule | " + " | ".join(engines) + " |",
            "|---|" + "---:|" * len(engines),
        ]
        for rule in RULES:
            cells = []
            for b in engines:
                c = inv[b].get(rule)
                cells.append(
                    "–"
                    if not c
                    else f"{c['accepts_invalid']} / {c['internal_error_on_invalid'] + c['crash_on_invalid']} / "
                    f"{c['cases']}"
                )
            L.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(L) + "\n"
