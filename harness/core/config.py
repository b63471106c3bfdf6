"""Typed, frozen configuration: timing budgets and the named suites (data, never mutated).

Built from the CLI only; nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from harness.core.errors import UnknownNameError


@dataclass(frozen=True)
class TimingConfig:
    """How one case is timed: `warmup` untimed runs, then runs until BOTH `min_repeats` samples and
    `min_time_s` seconds are reached, stopping early only at `max_time_s` (with at least 3 samples)
    or at `max_repeats`.

    With `rel_ci` set, timing stops as soon as it knows enough instead: once `min_repeats` samples and
    `min_time_s` are reached, at the first sample where the distribution-free 95% confidence interval of the
    median is within ±`rel_ci` of the median (harness/measure/timing.py `median_ci`); `max_time_s` is then the
    case's time budget. Without it (None) the count-and-time protocol above holds: the performance gate's."""

    warmup: int = 3
    min_repeats: int = 10
    min_time_s: float = 1.0
    max_time_s: float = 30.0
    max_repeats: int = 2_000
    rel_ci: float | None = None  # e.g. 0.01: stop when the median's 95% CI is within ±1%

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_repeats < 1 or self.max_repeats < self.min_repeats:
            raise ValueError(f"inconsistent timing config {self}")
        if self.min_time_s < 0 or self.max_time_s < self.min_time_s:
            raise ValueError(f"inconsistent timing config {self}")
        if self.rel_ci is not None and not 0 < self.rel_ci < 1:
            raise ValueError(f"inconsistent timing config {self}: rel_ci must be in (0, 1)")

    def rule(self) -> str:
        """The stopping rule in words, as records and reports state it."""
        if self.rel_ci is None:
            return (
                f"fixed: >= {self.min_repeats} calls and >= {self.min_time_s:g} s, "
                f"at most {self.max_time_s:g} s or {self.max_repeats} calls"
            )
        return (
            f"precision: median's 95% CI within ±{100 * self.rel_ci:g}% (after >= {self.min_repeats} calls and "
            f"{self.min_time_s:g} s), budget {self.max_time_s:g} s or {self.max_repeats} calls"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "warmup": self.warmup,
            "min_repeats": self.min_repeats,
            "min_time_s": self.min_time_s,
            "max_time_s": self.max_time_s,
            "max_repeats": self.max_repeats,
            "rel_ci": self.rel_ci,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> TimingConfig:
        """`to_json`'s dict back; a missing key takes its default."""
        return TimingConfig(**{f.name: d[f.name] for f in fields(TimingConfig) if f.name in d})


@dataclass(frozen=True)
class RunConfig:
    """Everything a worker needs to run cases the same way: threads per engine and the timing budget."""

    threads: int = 2
    timing: TimingConfig | None = TimingConfig()  # None: validate only, no timing
    case_timeout_s: float = 900.0  # wall clock per case, enforced by the sweep driver
    prepare_timeout_s: float = 900.0  # export + float64 reference of one model
    seed: int = 0  # weights and synthesised inputs
    memory_cap_gib: float | None = None  # a worker above this resident size is killed (OOM record)
    # Fault injection, for the tests of isolation only: (case id, kind) with kind one of
    # segv | abort | hang | oom | exit; the worker does that instead of running the case.
    faults: tuple[tuple[str, str], ...] = ()
    # Measuring the performance gate's power only: (case-id glob, percent) — matching cases busy-wait that
    # share of their own duration in every timed call; the record says so (details.injected_slowdown).
    inject_slowdown: tuple[tuple[str, float], ...] = ()
    cuda_arch: str | None = None  # CUDA builds: sm_XX (default: device 0's, else cuda.DEFAULT_ARCH)
    tf32: bool = True  # ort-cuda: allow TF32 (ONNX Runtime's default); judged looser
    compile_only: bool = False  # `convtx build`: stop after compiling (no run, no timing)
    # the sweep's parallel compile-ahead only: a kernel whose default-schedule decision is not kept is not measured
    # (harness/backends/tvm/defaults.py MeasureLater); the case is compiled again alone. Never in run.json
    defer_measurement: bool = False
    # a CUDA case on a machine without a GPU: built and recorded "built, not run" (True), or skipped without
    # building (False: the default suite, whose reader learns nothing from minutes of CUDA builds that cannot run;
    # `make build-cuda` builds them)
    build_without_gpu: bool = True
    # Remote devices through TVM's RPC tracker (harness/backends/tvm/remote.py): "HOST:PORT" and the servers' device key
    rpc_tracker: str | None = None
    rpc_key: str | None = None
    # cases in flight at once on the key's servers (None: as many as the tracker has servers under the key)
    rpc_parallel: int | None = None
    # the sweep's compile-ahead only (harness/pipeline/farm.py): build for the remote machine this description
    # names ({triple, cpu, vendor, threads, cuda}), without a session; never in run.json
    rpc_machine: Mapping[str, Any] | None = None
    # `bench --counts`: "callgrind" — each CPU case is counted under valgrind (harness/measure/counting.py) instead of
    # timed by the clock; the record's `counts` holds the numbers, `latency_ms` stays None
    counter: str | None = None
    # per-layer profiles (Compiled.profile): inferences profiled per verified, timed case after its timing; 0: none
    profile_runs: int = 0

    def to_json(self) -> dict[str, Any]:
        """The one JSON form of a configuration: run.json's `config` (docs/design.md) and each case's payload to
        a worker. `rpc` is {tracker, key} and `counter` {tool}; bench writes in their place what it learnt of
        them (the tracker's servers and queue, the counter's identity), which hold the same keys. Fields no
        bench sets (`prepare_timeout_s`, the tests' `faults`, `convtx build`'s `compile_only`) are written only
        when they differ from their defaults, so a bench run's config holds exactly the documented keys."""
        d: dict[str, Any] = {
            "threads": self.threads,
            "seed": self.seed,
            "case_timeout_s": self.case_timeout_s,
            "memory_cap_gib": self.memory_cap_gib,
            "timing": self.timing.to_json() if self.timing else None,
            "inject_slowdown": [[glob, pct] for glob, pct in self.inject_slowdown],
            "cuda_arch": self.cuda_arch,
            "tf32": self.tf32,
            "rpc": (
                {"tracker": self.rpc_tracker, "key": self.rpc_key, "parallel": self.rpc_parallel}
                if self.rpc_tracker or self.rpc_key
                else None
            ),
            "counter": {"tool": self.counter} if self.counter else None,
        }
        if self.prepare_timeout_s != RunConfig.prepare_timeout_s:
            d["prepare_timeout_s"] = self.prepare_timeout_s
        if self.faults:
            d["faults"] = [[case, kind] for case, kind in self.faults]
        if self.compile_only:
            d["compile_only"] = True
        if self.defer_measurement:
            d["defer_measurement"] = True
        if not self.build_without_gpu:
            d["build_without_gpu"] = False
        if self.profile_runs:
            d["profile_runs"] = self.profile_runs
        if self.rpc_machine is not None:
            d["rpc_machine"] = dict(self.rpc_machine)
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> RunConfig:
        """`to_json`'s dict back, or run.json's `config`: keys an older run.json lacks take their defaults;
        threads, seed, case_timeout_s and timing are required (KeyError)."""
        rpc, counter = d.get("rpc") or {}, d.get("counter") or {}
        timing = d["timing"]
        return RunConfig(
            threads=d["threads"],
            seed=d["seed"],
            case_timeout_s=d["case_timeout_s"],
            prepare_timeout_s=d.get("prepare_timeout_s", RunConfig.prepare_timeout_s),
            memory_cap_gib=d.get("memory_cap_gib"),
            timing=TimingConfig.from_json(timing) if timing is not None else None,
            faults=tuple((case, kind) for case, kind in d.get("faults") or ()),
            inject_slowdown=tuple((glob, float(pct)) for glob, pct in d.get("inject_slowdown") or ()),
            cuda_arch=d.get("cuda_arch"),
            tf32=d.get("tf32", True),
            compile_only=d.get("compile_only", False),
            defer_measurement=d.get("defer_measurement", False),
            build_without_gpu=d.get("build_without_gpu", True),
            rpc_tracker=rpc.get("tracker"),
            rpc_key=rpc.get("key"),
            rpc_parallel=rpc.get("parallel"),
            rpc_machine=d.get("rpc_machine"),
            counter=counter.get("tool"),
            profile_runs=int(d.get("profile_runs", 0)),
        )


@dataclass(frozen=True)
class Suite:
    """A named preset: models (zoo refs `name@size`), lowerings, backends, batches and the timing budget."""

    name: str
    models: tuple[str, ...]
    lowerings: tuple[str, ...] = ("native",)
    backends: tuple[str, ...] = ("ort-cpu", "tvm-llvm", "torch-cpu")
    batches: tuple[int, ...] = (1,)
    timing: TimingConfig = field(default_factory=TimingConfig)
    profile_runs: int = 0  # per-layer profiles of each verified case (RunConfig.profile_runs)
    build_without_gpu: bool = True  # RunConfig.build_without_gpu, unless --backends names the engines

    def with_overrides(self, **kw) -> Suite:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


# TVM as it comes and TVM with the committed tuning database (`tuning/`), IREE with its two option sets, beside
# ORT, OpenVINO and eager PyTorch
CPU_BACKENDS = ("ort-cpu", "tvm-llvm", "tvm-llvm-tuned", "openvino-cpu", "iree-cpu", "iree-cpu-cl", "torch-cpu")
# On a machine without a GPU, tvm-cuda cases are built (and recorded "built, not run: <why>") and ort-cuda
# cases say why they cannot run; where a GPU is, the same cases run.
CUDA_BACKENDS = ("tvm-cuda", "ort-cuda", "iree-cuda")
ALL_LOWERINGS = ("native", "explicit_pads", "zero_insert", "phase", "phase_split", "gemm_col2im", "gemm_overlap_add")

# every zoo model at a deployment-like size (the seed autoencoder also at its original 32 x 32)
DEFAULT_MODELS = (
    "cae@32",
    "cae@256",
    "dcgan@64",
    "vae@128",
    "wave1d@8192",
    "fcn8s@256",
    "unet@256",
    "segnet@256",
    "segnet_noidx@256",
    "subpixel@256",
    "dwdecoder@256",
    "vol3d@32",
)

# each base form before its ConvTranspose form (either order is compared; this one compares on the form's case)
UNPOOL_MODELS = (
    "unpool_nearest@256",
    "unpool_nearest_ct@256",
    "unpool_nails@256",
    "unpool_nails_ct@256",
    "unpool_max@256",
)

SUITES: dict[str, Suite] = {
    # a minute or so: small sizes, short timing; what tests and quick checks use
    "quick": Suite(
        name="quick",
        models=("cae@32", "unet@64"),
        timing=TimingConfig(warmup=2, min_repeats=5, min_time_s=0.2, max_time_s=5.0),
    ),
    # `make perf-check`'s count gate (bench --counts): the quick suite's engines and models, UNet at 32 x 32 (at 64 its
    # TVM case alone took 3.5 minutes under callgrind); counts are exact, so one round of five counted calls
    "gate": Suite(
        name="gate",
        models=("cae@32", "unet@32"),
        timing=TimingConfig(warmup=2, min_repeats=5, min_time_s=0.2, max_time_s=5.0),
    ),
    # `make bench`: every zoo model at a deployment-like size, every lowering (the seed autoencoder also at
    # its original 32 x 32)
    "default": Suite(
        name="default",
        models=DEFAULT_MODELS,
        lowerings=ALL_LOWERINGS,
        backends=CPU_BACKENDS + CUDA_BACKENDS,
        # until the median is known to ±2% (95% CI), at least 10 calls and 0.2 s, at most 2 s: replayed on the
        # 223 timed cases of a fixed-protocol run (1 s each), this rule would have timed 62 s instead of 203 s,
        # 18 cases ending at the budget
        timing=TimingConfig(warmup=3, min_repeats=10, min_time_s=0.2, max_time_s=2.0, rel_ci=0.02),
        profile_runs=10,
        # without a GPU the CUDA cases say so in a line each, at once, instead of spending 4 minutes building
        # libraries that cannot run here (`make build-cuda` builds and checks them)
        build_without_gpu=False,
    ),
    # `make bench-cuda` on a GPU machine: the default suite's models on both CUDA engines, ORT's CPU EP as the
    # yardstick; `bench --require-gpu` refuses to report timings unless the CUDA cases ran on the device
    "cuda": Suite(
        name="cuda",
        models=DEFAULT_MODELS,
        lowerings=ALL_LOWERINGS,
        backends=CUDA_BACKENDS + ("ort-cpu",),
        timing=TimingConfig(warmup=10, min_repeats=20, min_time_s=1.0, max_time_s=10.0),
    ),
    # every zoo model at its largest registered size (512 x 512 maps, 64^3 volumes): hours with untuned TVM
    "full": Suite(
        name="full",
        models=(
            "cae@256",
            "dcgan@128",
            "vae@256",
            "wave1d@32768",
            "fcn8s@512",
            "unet@512",
            "segnet@256",
            "segnet_noidx@256",
            "subpixel@256",
            "dwdecoder@256",
            "vol3d@64",
        ),
        lowerings=ALL_LOWERINGS,
        backends=CPU_BACKENDS,
        timing=TimingConfig(warmup=3, min_repeats=10, min_time_s=1.0, max_time_s=20.0),
    ),
    # the three unpooling variants and the ConvTranspose forms of two of them (models/unpool.py), every lowering on
    # every CPU engine: the report's "Unpooling variants" section (`make bench-unpool`)
    "unpool": Suite(
        name="unpool",
        models=UNPOOL_MODELS,
        lowerings=ALL_LOWERINGS,
        backends=CPU_BACKENDS,
        timing=TimingConfig(warmup=3, min_repeats=10, min_time_s=0.2, max_time_s=2.0, rel_ci=0.02),
        profile_runs=10,  # where each variant's time goes, per engine (the report's profiles)
    ),
    # the zoo's largest ConvTranspose alone, every lowering: where lowerings differ most
    "layers": Suite(
        name="layers",
        models=("unet_up@64", "unet_up@256"),
        lowerings=ALL_LOWERINGS,
        timing=TimingConfig(warmup=3, min_repeats=10, min_time_s=1.0, max_time_s=20.0),
    ),
}


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise UnknownNameError("suite", name, sorted(SUITES)) from None
