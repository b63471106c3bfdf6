"""What ran the numbers: machine, engine versions, commit. Stored in run.json."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import os
import platform
import subprocess
from pathlib import Path

# Every package whose version changes numbers; pinned exactly in pyproject.toml.
VERSIONED = (
    "torch",
    "onnx",
    "onnxruntime",
    "apache-tvm",
    "apache-tvm-ffi",
    "openvino",
    "iree-base-compiler",
    "iree-base-runtime",
    "onnxscript",
    "numpy",
)


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    out["tvm"] = out.get("apache-tvm")
    try:
        out["convtx"] = md.version("convtx")
    except md.PackageNotFoundError:
        out["convtx"] = None
    return out


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_info() -> dict:
    info = {"machine": platform.machine(), "system": platform.system(), "logical_cpus": os.cpu_count()}
    info["usable_cpus"] = usable_cpus()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model, flags = None, []
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and model is None:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
        info["cpu_model"] = model
        # the ISA features that decide kernel choice; the full list is long and adds nothing
        info["flags"] = sorted(f for f in flags if f.startswith(("avx", "fma", "sse4", "amx", "f16c")))
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
        freq = psutil.cpu_freq()
        info["cpu_mhz"] = round(freq.current) if freq else None
    except Exception:  # noqa: BLE001 — psutil facts are optional in run.json
        pass
    return info


def git_commit(repo: Path) -> dict:
    def git(*args):
        try:
            p = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return p.stdout.strip() if p.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    return {"commit": commit or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(repo: Path) -> str:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    commit = (git_commit(repo)["commit"] or "nogit")[:8]
    return f"{stamp}-{commit}"
