"""What the commands share: turning flag text into checked values (one-line ConvtxError otherwise), the run
options of validate, bench and build, and the RunConfig they give.

Imports only the standard library at load time (`convtx --help` stays fast); registries load when used.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.core.errors import ConvtxError
from harness.measure.machine import usable_cpus


def csv_list(text: str | None) -> list[str] | None:
    """`a, b,,c` -> ['a', 'b', 'c']; None when the flag was not given."""
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def default_memory_cap() -> float:
    """Three quarters of this machine's memory, in GiB, per worker."""
    import psutil

    return round(0.75 * psutil.virtual_memory().total / 2**30, 1)


def writable_dir(path: Path, what: str) -> Path:
    """`path`, created if need be and writable, or a one-line error (the pipeline's check of its run
    directories, harness/pipeline/bench.py, imported only when a command runs)."""
    from harness.pipeline.bench import writable_dir as check

    return check(path, what)


def writable_parent(path: Path) -> Path:
    """The directory an output file goes into, checked (before any work, so nothing is half-written)."""
    return writable_dir(path.parent if str(path.parent) else Path("."), "output directory")


def names_arg(text: str | None, registry: dict, check, default: list[str] | None) -> list[str] | None:
    """`a,b` -> checked names (unknown ones raise, listing the known); `all` -> the whole registry."""
    names = csv_list(text)
    if not names:
        return default
    if names == ["all"]:
        return list(registry)
    for n in names:
        check(n)
    return names


def backends_arg(text: str | None, default: list[str]) -> list[str]:
    from harness.backends import BACKENDS, get_backend

    return names_arg(text, BACKENDS, get_backend, default)


def lowerings_arg(text: str | None, default: list[str]) -> list[str]:
    from harness.lowerings import LOWERINGS, get_lowering

    return names_arg(text, LOWERINGS, get_lowering, default)


def batches_arg(text: str | None) -> list[int] | None:
    names = csv_list(text)
    if not names:
        return None
    try:
        out = [int(b) for b in names]
    except ValueError:
        raise ConvtxError(f"--batches {text!r}: expected comma-separated positive integers") from None
    if any(b < 1 for b in out):
        raise ConvtxError(f"--batches {text!r}: expected comma-separated positive integers")
    return out


def slowdown_arg(values) -> tuple[tuple[str, float], ...]:
    """`--inject-slowdown PCT[@CASE_GLOB]` (repeatable; default glob: every case)."""
    out = []
    for v in values or ():
        pct, _, glob = v.partition("@")
        try:
            p = float(pct)
        except ValueError:
            p = -1.0
        if not 0 < p <= 1000:
            raise ConvtxError(f"--inject-slowdown {v!r}: expected PCT[@CASE_GLOB] with 0 < PCT <= 1000")
        out.append((glob or "*", p))
    return tuple(out)


def add_run_options(sp) -> None:
    """The options of every command that runs cases (validate, bench, build)."""
    sp.add_argument("--backends", help="comma-separated backend ids, or 'all'")
    sp.add_argument("--lowerings", help="comma-separated lowering names, or 'all'")
    sp.add_argument("--batches", help="comma-separated batch sizes (zoo models)")
    sp.add_argument(
        "--shape", action="append", metavar="NAME=D1xD2x…", help="concrete shape for an ONNX file's input (repeatable)"
    )
    sp.add_argument("--threads", type=int, default=None, help="threads per engine (default: usable CPUs)")
    sp.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (default 0)")
    sp.add_argument("--case-timeout", type=float, default=900.0, help="seconds per case (default 900)")
    sp.add_argument(
        "--memory-cap",
        type=float,
        default=None,
        metavar="GIB",
        help="kill a worker whose resident memory exceeds this (default: 75%% of RAM)",
    )
    sp.add_argument(
        "--cuda-arch", metavar="sm_XX", help="CUDA architecture to build for (default: device 0's, else sm_80)"
    )
    sp.add_argument("--no-tf32", action="store_true", help="ort-cuda: disable TF32 (then judged as float32)")
    sp.add_argument(
        "--rpc-tracker",
        metavar="HOST:PORT",
        help="run TVM cases on remote devices handed out by this TVM RPC tracker (docs/rpc.md)",
    )
    sp.add_argument("--rpc-key", metavar="KEY", help="the device key the RPC servers registered under")
    sp.add_argument(
        "--rpc-parallel",
        type=int,
        metavar="N",
        help="cases in flight at once on the key's servers (default: one per server registered under the key)",
    )
    sp.add_argument("--build-dir", default="build", help="content-addressed cache (default build/)")


def run_config(args, timing, profile_runs: int = 0):
    """The RunConfig of validate, bench and build from their flags (`timing` None: untimed)."""
    from harness.core.config import RunConfig

    threads = args.threads or usable_cpus()
    if threads < 1:
        raise ConvtxError(f"--threads {threads}: expected a positive integer")
    if args.memory_cap is not None and args.memory_cap <= 0:
        raise ConvtxError(f"--memory-cap {args.memory_cap}: expected a positive number of GiB")
    arch = getattr(args, "cuda_arch", None)
    if arch is not None and not re.fullmatch(r"sm_\d{2,3}[a-z]?", arch):
        raise ConvtxError(f"--cuda-arch {arch!r}: expected sm_XX (e.g. sm_80, sm_90a)")
    tracker, key = getattr(args, "rpc_tracker", None), getattr(args, "rpc_key", None)
    if key and not tracker:
        raise ConvtxError("--rpc-key needs --rpc-tracker HOST:PORT")
    parallel = getattr(args, "rpc_parallel", None)
    if parallel is not None and (not tracker or parallel < 1):
        raise ConvtxError(f"--rpc-parallel {parallel}: expected a positive number of cases, with --rpc-tracker")
    if tracker:
        from harness.backends.tvm.remote import parse_tracker

        parse_tracker(tracker)
        if not key:
            raise ConvtxError("--rpc-tracker needs --rpc-key KEY (the device key the servers registered under)")
        if getattr(args, "compile_only", False):
            raise ConvtxError("--rpc-tracker: `convtx build` only compiles; run remotely with bench or validate")
        if getattr(args, "counts", False):
            raise ConvtxError("--counts: callgrind counts work on this machine; it cannot count a remote device")
    return RunConfig(
        threads=threads,
        timing=timing,
        case_timeout_s=args.case_timeout,
        seed=args.seed,
        memory_cap_gib=args.memory_cap if args.memory_cap is not None else default_memory_cap(),
        inject_slowdown=slowdown_arg(getattr(args, "inject_slowdown", None)),
        cuda_arch=arch,
        tf32=not getattr(args, "no_tf32", False),
        compile_only=getattr(args, "compile_only", False),
        rpc_tracker=tracker,
        rpc_key=key,
        rpc_parallel=parallel,
        counter="callgrind" if getattr(args, "counts", False) else None,
        profile_runs=0 if getattr(args, "counts", False) or timing is None else profile_runs,
    )
