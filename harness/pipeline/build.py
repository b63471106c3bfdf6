"""`convtx build`: compile only (e.g. CUDA on a machine without a GPU) and keep the artefacts.

Per case: the exported library, the generated kernel source and, where nvcc is found, the kernels compiled to
a cubin for the target architecture (proof that the source compiles; ptxas' register and spill report kept),
under OUT/<case-slug>/ (IREE: the compiled module, model.vmfb), and OUT/build.json listing them (docs/design.md). An nvcc failure that
harness/checking/known.py's CUDA_BUILD_LEDGER explains, or an engine failure its graph ledger explains, is marked
known rather than counted as a failure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.config import RunConfig
from harness.core.records import write_json_atomic
from harness.measure.cuda import nvcc_path
from harness.measure.machine import new_run_id
from harness.pipeline.sweep import Plan, run_plan

BUILDABLE = ("tvm-cuda", "tvm-llvm", "iree-cuda", "iree-cpu", "iree-cpu-cl")


@dataclass(frozen=True)
class Built:
    path: Path  # OUT: the artefacts and build.json
    run_id: str
    nvcc: str | None  # the nvcc used, None when none was found
    cases: tuple[dict[str, Any], ...]  # build.json's cases
    failed: int  # failed builds and nvcc failures the ledger does not explain

    @property
    def known(self) -> int:
        """Failures the ledgers explain: nvcc ones (CUDA_BUILD_LEDGER) and engine ones (GRAPH_LEDGER)."""
        return sum(1 for c in self.cases if (c.get("nvcc") or {}).get("known") or c.get("known"))


def build_artifacts(plan: Plan, cfg: RunConfig, out: Path, build: Path) -> Built:
    """Compile every case of `plan` (cfg.compile_only) and keep what it made in `out`."""
    run_id = "build-" + new_run_id(Path.cwd())
    records = run_plan(plan, cfg, run_id, build, out / "logs", sink=lambda r: None)
    nvcc = nvcc_path()
    cases, failed = [], 0
    for r in records:
        d = r.details
        entry = {
            "case_id": r.case_id,
            "status": r.status,
            "reason": r.reason,
            "compile_s": r.compile_s,
            "target": d.get("target"),
            "arch_from": d.get("arch_from"),
            "kernels": d.get("kernels"),
        }
        if r.status == "ok" and d.get("module"):  # IREE: the compiled module (.vmfb)
            slug = out / r.case_id.replace("/", "_").replace("@", "-")
            slug.mkdir(parents=True, exist_ok=True)
            shutil.copy2(d["module"], slug / "model.vmfb")
            entry["module"] = str(slug / "model.vmfb")
        if r.status == "ok" and d.get("library"):
            slug = out / r.case_id.replace("/", "_").replace("@", "-")
            slug.mkdir(parents=True, exist_ok=True)
            shutil.copy2(d["library"], slug / "model.so")
            entry["library"] = str(slug / "model.so")
            if d.get("cuda_source"):
                shutil.copy2(d["cuda_source"], slug / "kernels.cu")
                entry["cuda_source"] = str(slug / "kernels.cu")
                entry["nvcc"] = _nvcc_cubin(nvcc, slug / "kernels.cu", d["target"]["arch"])
                if entry["nvcc"]["status"] == "failed":
                    from harness.checking.known import match_cuda_build

                    known = match_cuda_build(r.case_id, entry["nvcc"].get("error", ""))
                    if known:
                        entry["nvcc"]["known"] = {"id": known[0], "why": known[1], "reproducer": known[2]}
                    else:
                        failed += 1
        if r.details.get("known"):  # an engine failure the graph ledger explains (harness/checking/known.py)
            entry["known"] = r.details["known"]
        failed += r.status in ("error", "mismatch") and not r.details.get("known")
        cases.append(entry)
    write_json_atomic(out / "build.json", {"run_id": run_id, "nvcc": nvcc, "cases": cases})
    return Built(out, run_id, nvcc, tuple(cases), failed)


def _nvcc_cubin(nvcc: str | None, src: Path, arch: str) -> dict:
    """Compile TVM's generated CUDA C to a cubin for `arch` with nvcc (no GPU needed)."""
    if nvcc is None:
        return {"status": "not run", "error": "nvcc not found (the kernel source is kept)"}
    cmd = [nvcc, "--cubin", f"-arch={arch}", "-O3", "-Xptxas", "-v", "-o", str(src.with_suffix(".cubin")), str(src)]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": "nvcc timed out after 600 s", "command": " ".join(cmd)}
    info = {"command": " ".join(cmd), "seconds": round(time.monotonic() - t0, 2)}
    (src.with_name("ptxas.log")).write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        err = [ln for ln in (p.stderr or p.stdout).splitlines() if "error" in ln.lower()] or (
            p.stderr or p.stdout
        ).splitlines()[-1:]
        return {**info, "status": "failed", "error": (err[0] if err else f"exit {p.returncode}")[:300]}
    regs = [int(m) for m in re.findall(r"Used (\d+) registers", p.stdout + p.stderr)]
    spills = sum(int(m) for m in re.findall(r"(\d+) bytes spill stores", p.stdout + p.stderr))
    return {
        **info,
        "status": "ok",
        "cubin": str(src.with_suffix(".cubin")),
        "registers_max": max(regs, default=0),
        "spills": spills,
    }
