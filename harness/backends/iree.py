"""IREE: the second ML compiler. The ONNX file imported by IREE's own ONNX importer (torch-mlir's, in
`iree.compiler.extras.onnx_importer`, with the case's concrete input shapes), compiled by `iree-compile` for this
machine's CPU (`--iree-llvmcpu-target-cpu=host`) or for CUDA, the module (.vmfb) kept in the content-addressed
cache, run by the IREE runtime.

Option sets (docs/design.md, "Backends"): like `tvm-llvm-tuned` beside `tvm-llvm`, an engine configuration is a
backend id of its own, so that every report, the best-configuration table and `convtx optimize` weigh it like a
lowering: `iree-cpu` is IREE as it comes (only the target CPU set), `iree-cpu-cl` adds the preprocessing
pipeline that converts convolutions to channels-last (the one flag that helped every decoder here:
ENGINE-FACTS). Each record carries the option set's name and every flag (`details.option_set`, `details.flags`).

Threads: the `local-task` driver's worker count is `--task_topology_max_group_count=N`, a runtime flag read when the
process's first local-task device is created: the driver's task executor is shared by every later device, so one
process runs one thread count (the sweep has a worker process per backend, all its cases at the run's count). After
the first call the backend counts the process's `iree-worker-*` threads and records the count
(`details.runtime_threads`); a count other than the one asked for fails the case.

IREE's `phase` lowering interleaves its phases with Reshape/Transpose instead of DepthToSpace(CRD), which IREE
3.13 computes wrongly (`Backend.lowering_options`; the ledger's `iree-depth-to-space-crd`).

Per-layer view: IREE's HAL profiling (`iree-benchmark-module --device_profiling_mode=host-execution`, read with
`iree-profile dispatch`) gives each dispatch's time; a dispatch is a fused region named by IREE after its root op
(`main_graph$async_dispatch_1_conv_16x256x256x3x3x3_f32`), reported under that name and the op kind it names.

Optional: `pip install -e ".[iree]"` (the extra pins the version); without it the backend is unavailable with that
reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.backends.base import (
    Availability,
    Backend,
    BackendUnavailable,
    BuiltNotRun,
    Compiled,
    LayerTime,
    ModelArtifact,
    UnsupportedModel,
)
from harness.core import cache
from harness.core.config import RunConfig

CHANNELS_LAST = (
    "--iree-preprocessing-pass-pipeline=builtin.module(util.func(iree-preprocessing-convert-conv-to-channels-last))"
)
# option set name -> the flags it adds to the target's own
OPTION_SETS: dict[str, tuple[str, ...]] = {"default": (), "channels_last": (CHANNELS_LAST,)}
_SOURCES = (Path(__file__),)


class IreeFailure(RuntimeError):
    """The IREE compiler refused a model: its first diagnostic line (the whole log is in the details)."""


def _first_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    err = next((ln for ln in lines if "error:" in ln), lines[-1] if lines else "no diagnostic")
    return re.sub(r"^<stdin>:\d+:\d+:\s*", "", err)[:300]


def import_onnx(onnx_path: str, shapes: dict[str, tuple[int, ...]]) -> str:
    """The model as MLIR (torch-mlir's ONNX dialect), its inputs bound to `shapes`."""
    import onnx
    from iree.compiler.extras import onnx_importer
    from iree.compiler.ir import Context

    from harness.core.onnx_io import fix_input_shapes

    model = fix_input_shapes(onnx.load(onnx_path), shapes)
    info = onnx_importer.ModelInfo(model)
    ctx = Context()
    module = info.create_module(context=ctx).operation
    try:
        onnx_importer.NodeImporter.define_function(info.main_graph, module).import_all()
    except Exception as e:  # noqa: BLE001 — the importer's refusal is this engine's answer
        why = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise UnsupportedModel(f"iree: the ONNX importer refused the model: {why}") from None
    return module.get_asm(assume_verified=True)


def host_cpu() -> str:
    """What `--iree-llvmcpu-target-cpu=host` compiles for: this CPU, named by its model string and ISA flags
    (part of the module's cache key: a module built for another CPU is never reused)."""
    from harness.measure.machine import cpu_info

    c = cpu_info()
    return f"{c.get('cpu_model')} [{' '.join(c.get('flags') or [])}]"


def _allowed_cpus() -> set[int]:
    """The CPUs this process's cgroup allows (cpuset), else every CPU the machine has."""
    try:
        text = Path("/sys/fs/cgroup/cpuset.cpus.effective").read_text().strip()
        cpus: set[int] = set()
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        if cpus:
            return cpus
    except (OSError, ValueError):
        pass
    return set(range(os.cpu_count() or 1))


def _config(device: str):
    """The runtime's device config. IREE's task executor sizes itself by the CPU affinity of the thread that creates
    the first device, and its workers inherit it; TVM's runtime pins the calling thread to one CPU, so in a process
    that ran TVM first IREE would start one worker whatever was asked. The creating thread's affinity is widened to
    the CPUs the process may use for the creation, then restored."""
    import iree.runtime as rt

    try:
        before = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return rt.Config(device)
    allowed = _allowed_cpus()
    if before >= allowed:
        return rt.Config(device)
    try:
        os.sched_setaffinity(0, allowed)
    except OSError:
        return rt.Config(device)
    try:
        return rt.Config(device)
    finally:
        os.sched_setaffinity(0, before)


class IreeCompiled(Compiled):
    def __init__(self, vmfb: Path, function: str, device: str, input_names, info, threads: int | None):
        import iree.runtime as rt

        super().__init__(tuple(input_names), info)
        self.vmfb, self.device_uri, self.threads = vmfb, device, threads
        self.config = _config(device)
        self.ctx = rt.SystemContext(config=self.config)
        module = rt.VmModule.copy_buffer(self.config.vm_instance, vmfb.read_bytes())
        self.ctx.add_vm_module(module)
        self.function = _entry(module.function_names, function)
        self.fn = self.ctx.modules.module[self.function]
        self._checked = False

    def _call(self, args) -> list[np.ndarray]:
        out = self.fn(*args)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return [np.asarray(o.to_host()) for o in outs]

    def _check_threads(self) -> None:
        """The worker count the runtime started, counted from this process's threads (Linux)."""
        if self._checked or self.threads is None:
            return
        self._checked = True
        try:
            names = [Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task")]
        except OSError:
            self.info["runtime_threads"] = None
            return
        workers = sum(1 for n in names if n.startswith("iree-worker"))
        self.info["runtime_threads"] = workers
        if workers != self.threads:
            raise RuntimeError(
                f"iree: asked the local-task driver for {self.threads} worker(s) "
                f"(--task_topology_max_group_count), it started {workers}"
            )

    def _run_impl(self, feeds):
        outs = self._call([np.ascontiguousarray(feeds[n]) for n in self.input_names])
        self._check_threads()
        return outs

    def _prepare(self, feeds) -> Callable[[], object]:
        import iree.runtime as rt

        dev = self.config.device
        args = [rt.asdevicearray(dev, np.ascontiguousarray(feeds[n])) for n in self.input_names]
        return lambda: self._call(args)  # each call waits for its outputs (to_host)

    def profile(self, feeds, runs: int = 10) -> list[LayerTime]:
        """Each dispatch's mean time over `runs` calls, from IREE's HAL profiling of the same module in
        iree-benchmark-module (host-execution events), named as IREE names its dispatches."""
        from iree import _runtime_libs

        tools = Path(_runtime_libs.__file__).parent
        with tempfile.TemporaryDirectory(prefix="convtx-iree-") as tmp:
            args = []
            for i, n in enumerate(self.input_names):
                p = Path(tmp) / f"in{i}.npy"
                np.save(p, np.ascontiguousarray(feeds[n]))
                args.append(f"--input=@{p}")
            prof = Path(tmp) / "run.ireeprof"
            bench = [
                str(tools / "iree-benchmark-module"),
                f"--module={self.vmfb}",
                f"--function={self.function}",
                f"--device={self.device_uri}",
                *args,
                *([f"--task_topology_max_group_count={self.threads}"] if self.threads else []),
                "--device_profiling_mode=host-execution,executable-metadata",
                f"--device_profiling_output={prof}",
                f"--benchmark_min_time={runs}x",
                "--benchmark_repetitions=1",
            ]
            p = subprocess.run(bench, capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"iree-benchmark-module: {_first_error(p.stderr or p.stdout)}")
            q = subprocess.run(
                [str(tools / "iree-profile"), "dispatch", "--format=jsonl", str(prof)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if q.returncode != 0:
                raise RuntimeError(f"iree-profile: {_first_error(q.stderr or q.stdout)}")
        rows = [r for r in map(json.loads, q.stdout.splitlines()) if r.get("type") == "host_dispatch_group"]
        if not rows:
            raise RuntimeError("iree-profile: the profile holds no dispatch")
        # inferences profiled: every dispatch runs at least once per inference, so the fewest executions of any
        # (the benchmark decides how many calls it makes around the requested count)
        calls = max(1, min(int(r["count"]) for r in rows))
        return [
            LayerTime(
                _dispatch_label(str(r["key"])), _dispatch_op(str(r["key"])), r["total_ns"] / 1e6 / calls, str(r["key"])
            )
            for r in rows
        ]


def _dispatch_label(name: str) -> str:
    """`main_graph$async_dispatch_1_conv_16x256x256x3x3x3_f32` -> `dispatch_1_conv_16x256x256x3x3x3_f32`."""
    return name.split("$async_")[-1].split("$")[-1]


def _dispatch_op(name: str) -> str:
    """The op kind IREE names the dispatch after (`conv`, `matmul`, `elementwise`, `slow_memcpy`, …)."""
    m = re.search(r"dispatch_\d+_([a-z_]+?)(?:_\d|_f32|_i64|$)", name)
    return m.group(1) if m else "dispatch"


class IreeBackend(Backend):
    engine = "iree"
    requires = ("iree.compiler", "iree.runtime")
    compiles_ahead = True  # seconds per model and cached by content: built in parallel before timing
    option_set = "default"
    target_backend = "llvm-cpu"
    # IREE 3.13 computes DepthToSpace(CRD) wrongly (harness/checking/known.py, iree-depth-to-space-crd): the phase
    # lowering interleaves with Reshape/Transpose for it
    lowering_options = {"depth_to_space": "reshape"}

    def availability(self) -> Availability:
        a = super().availability()  # no engine import here: the sweep driver calls this
        if not a:
            return Availability(False, f"{a.reason}: it is an optional extra, pip install -e '.[iree]'")
        return a

    def target_flags(self, cfg: RunConfig) -> list[str]:
        raise NotImplementedError

    def flags(self, cfg: RunConfig) -> list[str]:
        return [*self.target_flags(cfg), *OPTION_SETS[self.option_set]]

    def _module(self, art: ModelArtifact, cfg: RunConfig) -> tuple[Path, str, dict]:
        """(module path, entry function, info): compiled, or loaded from the cache."""
        import iree.compiler as ic
        import iree.compiler.version as icv

        from harness.core.onnx_io import model_digest

        flags = self.flags(cfg)
        version = f"{icv.VERSION} ({icv.REVISIONS.get('IREE', '?')[:12]})"
        key = hashlib.sha256(
            json.dumps(
                [
                    model_digest(art.onnx_path),
                    sorted(art.input_shapes.items()),
                    sorted(art.input_dtypes.items()),
                    self.target_backend,
                    flags,
                    version,
                    host_cpu() if self.target_backend == "llvm-cpu" else "",
                    cache.source_digest(_SOURCES),
                ],
                sort_keys=True,
            ).encode()
        ).hexdigest()[:20]
        base = Path(art.cache_dir) if art.cache_dir else Path(tempfile.mkdtemp(prefix="convtx-iree-"))
        out = base / f"{Path(art.onnx_path).stem}-iree-{self.id}-{key}.vmfb"
        info = {
            "engine_version": version,
            "option_set": self.option_set,
            "flags": flags,
            "target_backend": self.target_backend,
        }
        if cache.is_valid(out):
            info["compile_cache"] = "hit"
        else:
            asm = import_onnx(art.onnx_path, art.input_shapes)
            try:
                vmfb = ic.compile_str(asm, target_backends=[self.target_backend], input_type="onnx", extra_args=flags)
            except ic.CompilerToolError as e:
                raise IreeFailure(f"iree-compile: {_first_error(str(e))}") from None
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.tmp_path(out)
            tmp.write_bytes(vmfb)
            cache.commit(tmp, out)
            info["compile_cache"] = "miss"
        info["module_bytes"] = out.stat().st_size
        info["module"] = str(out)
        return out, "main_graph", info


class IreeCpu(IreeBackend):
    id = "iree-cpu"

    def target_flags(self, cfg: RunConfig) -> list[str]:
        return ["--iree-llvmcpu-target-cpu=host"]

    def _compile_impl(self, art: ModelArtifact, cfg: RunConfig) -> Compiled:
        import iree.runtime as rt

        vmfb, fn, info = self._module(art, cfg)
        info["target_cpu"] = f"host: {host_cpu()}"
        info["device"] = "local-task"
        info["threads"] = cfg.threads
        if cfg.compile_only:
            return Compiled(tuple(art.input_shapes), info)
        # the local-task driver's worker count: a process-wide runtime flag, read when the device is created
        rt.flags.parse_flags(f"--task_topology_max_group_count={cfg.threads}")
        return IreeCompiled(vmfb, fn, "local-task", list(art.input_shapes), info, cfg.threads)


class IreeCpuChannelsLast(IreeCpu):
    id = "iree-cpu-cl"
    option_set = "channels_last"
    file_default = False  # an option set of iree-cpu: in the suites and `optimize`, not every file check


class IreeCuda(IreeBackend):
    """IREE for NVIDIA GPUs: built here for the architecture `--cuda-arch` (or device 0's, else sm_80) names, run
    only where a GPU is; without one the case is `skipped` ("built, not run") with the facts of the build."""

    id = "iree-cuda"
    device = "cuda"
    target_backend = "cuda"
    file_default = False

    def _availability_impl(self) -> Availability:
        from harness.measure import cuda

        p = cuda.probe()
        return Availability(True, "" if p.runnable else f"builds here; cannot run: {p.reason}")

    def target_flags(self, cfg: RunConfig) -> list[str]:
        from harness.measure import cuda

        arch, _ = cuda.arch_for(cfg.cuda_arch)
        return [f"--iree-cuda-target={arch}"]

    def _compile_impl(self, art: ModelArtifact, cfg: RunConfig) -> Compiled:
        from harness.measure import cuda

        arch, arch_from = cuda.arch_for(cfg.cuda_arch)
        vmfb, fn, info = self._module(art, cfg)
        info.update({"arch": arch, "arch_from": arch_from})
        if cfg.compile_only:
            return Compiled(tuple(art.input_shapes), info)
        p = cuda.probe()
        if not p.runnable:
            raise BuiltNotRun(p.reason, info)
        try:
            compiled = IreeCompiled(vmfb, fn, "cuda", list(art.input_shapes), info, None)
        except RuntimeError as e:
            why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise BuiltNotRun(f"IREE's CUDA driver did not start: {why}", info) from None
        info["device"] = p.devices[0]
        return compiled


def _entry(names, default: str) -> str:
    """The module's entry function among its `names`: the ONNX graph's name (`main_graph` as PyTorch exports), else
    the one public function that is not IREE's own."""
    if default in names:
        return default
    public = [n for n in names if not n.startswith("__") and "$" not in n]
    if len(public) != 1:
        raise BackendUnavailable(f"iree: cannot tell the entry function among {list(names)}")
    return public[0]
