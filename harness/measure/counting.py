"""Counting instead of timing: each case's calls measured by valgrind's callgrind, not by the clock.

A clock on a shared 2-vCPU VM drifts by tens of percent between runs minutes apart (docs/perf-gate.md
measured 23-75% per case); a count of the work a call does is the same whatever the neighbours do. `bench
--counts` runs each CPU case in a worker process under

    valgrind --tool=callgrind --instr-atstart=no --cache-sim=yes <fixed caches> python -m harness.pipeline.worker

and brackets each counted call with callgrind's client requests (a small C helper, compiled here with gcc
against valgrind's own header): instrumentation starts before the warm-up calls (so the simulated caches
are warm the way they are after a warm-up), then every counted call is ZERO_STATS; call; DUMP_STATS, and the
dump's totals are read back. The metric is **estimated cycles**, the cache-aware cost model of
callgrind/cachegrind users (iai-callgrind's): L1 hits x 1 + LL hits x 5 + memory accesses x 35, from the
events Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw. Instructions (Ir) are kept beside it.

What makes counts comparable across machines: valgrind presents a fixed CPU to the program (CPUID of an
Intel Core i7-4910MQ, Haswell: AVX2, no AVX-512) on any x86-64 host with AVX2, the simulated caches are
fixed here (not taken from the host), and TVM builds for that CPU (`COUNT_TARGET`) when counting. So the
identity of a count run is valgrind's version, the CPUID it presents, the caches and the metric
(`identity()`), not the host's CPU. What counts do not see: waiting (a sleep, a lock, a stalled thread),
threading, and memory behaviour beyond the simulated caches; the gate keeps a wall-clock check for those
(docs/perf-gate.md).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness.core.records import Counts

# The simulated caches (size, associativity, line): a typical current core's L1s and a 2 MiB L2-like last
# level, the same on every host (callgrind would otherwise take the host's).
CACHES = {"I1": (32768, 8, 64), "D1": (49152, 12, 64), "LL": (2097152, 16, 64)}
EVENTS = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")
METRIC = "est_cycles"
METRIC_TEXT = "estimated cycles (L1 hit 1, LL hit 5, memory 35; callgrind cache simulation)"
WARMUP = 1  # uncounted calls (instrumented: the simulated caches warm up as real ones would); the
# numerical check before it was the engine's first call
CALLS = 5  # counted calls per case: with 5 vs 5, the smallest one-sided Mann-Whitney p is 1/252
# TVM builds for the CPU valgrind presents (the AVX-512 code TVM builds for the host would be an illegal
# instruction under valgrind); recorded in each record's details.target
COUNT_MCPU = "haswell"

_HELPER_C = r"""
#include <cpuid.h>
#include <string.h>
#include <valgrind/valgrind.h>
#include <valgrind/callgrind.h>
int cx_on_valgrind(void) { return RUNNING_ON_VALGRIND; }
void cx_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void cx_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void cx_zero(void) { CALLGRIND_ZERO_STATS; }
void cx_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
/* fixed extra work, for measuring the gate's power only (bench --counts --inject-slowdown) */
unsigned long cx_spin(unsigned long n) {
    volatile unsigned long acc = 1;
    for (unsigned long i = 0; i < n; i++) acc = acc * 6364136223846793005UL + i;
    return acc;
}
/* what the CPU says it is: vendor, family/model/stepping, feature words, brand */
void cx_cpuid(unsigned *out, char *vendor, char *brand) {
    unsigned a, b, c, d;
    __cpuid(0, a, b, c, d); memcpy(vendor, &b, 4); memcpy(vendor + 4, &d, 4); memcpy(vendor + 8, &c, 4);
    vendor[12] = 0;
    __cpuid(1, a, b, c, d); out[0] = a; out[1] = c; out[2] = d;
    __cpuid_count(7, 0, a, b, c, d); out[3] = b; out[4] = c; out[5] = d;
    for (unsigned i = 0; i < 3; i++) {
        __cpuid(0x80000002 + i, a, b, c, d);
        memcpy(brand + 16 * i, &a, 4); memcpy(brand + 16 * i + 4, &b, 4);
        memcpy(brand + 16 * i + 8, &c, 4); memcpy(brand + 16 * i + 12, &d, 4);
    }
    brand[48] = 0;
}
"""

_PROBE_PY = (
    "import ctypes, json, sys; h = ctypes.CDLL(sys.argv[1]); o = (ctypes.c_uint * 6)(); "
    "v = ctypes.create_string_buffer(13); b = ctypes.create_string_buffer(49); h.cx_cpuid(o, v, b); "
    "print(json.dumps({'on_valgrind': h.cx_on_valgrind(), 'vendor': v.value.decode(), "
    "'brand': b.value.decode().strip(), 'words': [f'{x:08x}' for x in o]}))"
)


class CountingUnavailable(RuntimeError):
    """valgrind, its header or a C compiler is missing: the reason, in one line."""


def _header_dir() -> Path | None:
    for d in ("/usr/include", "/usr/local/include"):
        if (Path(d) / "valgrind" / "callgrind.h").is_file():
            return Path(d)
    return None


def helper_library(build_dir: Path) -> Path:
    """The client-request helper, compiled once per source into build_dir/counting/ (content-addressed)."""
    if shutil.which("valgrind") is None:
        raise CountingUnavailable("valgrind is not installed (Debian: apt-get install valgrind)")
    inc = _header_dir()
    if inc is None:
        raise CountingUnavailable("valgrind's header callgrind.h is missing (/usr/include/valgrind/)")
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if cc is None:
        raise CountingUnavailable("no C compiler (gcc) to build the callgrind client-request helper")
    key = hashlib.sha256(_HELPER_C.encode()).hexdigest()[:12]
    lib = Path(build_dir) / "counting" / f"libconvtx_callgrind-{key}.so"
    if lib.is_file():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    src = lib.with_suffix(".c")
    src.write_text(_HELPER_C)
    tmp = lib.with_name(lib.name + f".tmp{os.getpid()}")
    r = subprocess.run(
        [cc, "-O1", "-shared", "-fPIC", f"-I{inc}", "-o", str(tmp), str(src)], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise CountingUnavailable(f"building the callgrind helper failed: {(r.stderr or r.stdout).strip()[:300]}")
    tmp.replace(lib)
    return lib


def valgrind_version() -> str:
    out = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
    return out.removeprefix("valgrind-") or "unknown"


_IDENTITY: dict | None = None


def identity(build_dir: Path) -> dict:
    """What a count run's numbers depend on besides the code: valgrind's version, the CPU valgrind presents
    (read under valgrind, not the host's), the simulated caches and the metric; `slug` names it."""
    global _IDENTITY
    if _IDENTITY is not None:
        return _IDENTITY
    import json

    lib = helper_library(build_dir)
    r = subprocess.run(
        ["valgrind", "-q", "--tool=none", sys.executable, "-c", _PROBE_PY, str(lib)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        cpu = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise CountingUnavailable(
            f"valgrind could not run Python here: {(r.stderr or r.stdout).strip()[-300:]}"
        ) from None
    ver = valgrind_version()
    digest = hashlib.sha256(json.dumps([cpu["vendor"], cpu["words"]]).encode()).hexdigest()[:6]
    caches = {k: list(v) for k, v in CACHES.items()}
    cdigest = hashlib.sha256(json.dumps([caches, METRIC, COUNT_MCPU]).encode()).hexdigest()[:4]
    _IDENTITY = {
        "tool": "callgrind",
        "valgrind": ver,
        "cpu": {k: cpu[k] for k in ("vendor", "brand", "words")},
        "caches": caches,
        "metric": METRIC,
        "metric_text": METRIC_TEXT,
        "tvm_mcpu": COUNT_MCPU,
        "warmup": WARMUP,
        "calls": CALLS,
        "slug": f"callgrind-{re.sub(r'[^0-9a-z.]+', '-', ver.lower())}-{digest}{cdigest}",
    }
    return _IDENTITY


def worker_prefix(out_dir: Path) -> list[str]:
    """The command that puts a worker process under callgrind (nothing is counted until it asks)."""
    caches = [f"--{k}={s},{a},{ln}" for k, (s, a, ln) in CACHES.items()]
    return [
        "valgrind",
        "-q",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--cache-sim=yes",
        *caches,
        "--dump-instr=no",
        "--dump-line=no",
        f"--callgrind-out-file={out_dir}/callgrind.%p",
    ]


def estimated_cycles(ev: dict[str, int]) -> int:
    l1_miss = ev["I1mr"] + ev["D1mr"] + ev["D1mw"]
    ll_miss = ev["ILmr"] + ev["DLmr"] + ev["DLmw"]
    accesses = ev["Ir"] + ev["Dr"] + ev["Dw"]
    return (accesses - l1_miss) + 5 * (l1_miss - ll_miss) + 35 * ll_miss


def parse_dump(path: Path) -> dict[str, int]:
    """The event totals of one callgrind dump file."""
    names: list[str] = []
    totals: list[int] = []
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                names = line.split()[1:]
            elif line.startswith(("totals:", "summary:")):
                vals = [int(x) for x in line.split()[1:]]
                if line.startswith("totals:") or not totals:
                    totals = vals
    if not names or not totals:
        raise RuntimeError(f"{path}: no events/totals line (not a callgrind dump?)")
    ev = dict(zip(names, totals + [0] * (len(names) - len(totals))))
    missing = [e for e in EVENTS if e not in ev]
    if missing:
        raise RuntimeError(f"{path}: events {missing} missing (was --cache-sim=yes given?)")
    return {e: ev[e] for e in EVENTS}


class Counter:
    """In a worker under callgrind: counts calls through the client requests."""

    def __init__(self, build_dir: Path):
        import ctypes

        self.lib = ctypes.CDLL(str(helper_library(build_dir)))
        self.lib.cx_spin.argtypes = [ctypes.c_ulong]
        self.lib.cx_spin.restype = ctypes.c_ulong
        if not self.lib.cx_on_valgrind():
            raise CountingUnavailable("this worker is not running under valgrind (bench --counts starts it so)")
        pattern = os.environ.get("CONVTX_CALLGRIND_OUT", "")
        self.out_dir = Path(pattern) if pattern else None

    def _collect(self, n: int) -> list[dict[str, int]]:
        """The events of the last `n` dumps, oldest first (callgrind numbers them: callgrind.<pid>.<k>); read
        only after the counted calls, so that no file handling runs between them."""
        if self.out_dir is None:
            raise RuntimeError("CONVTX_CALLGRIND_OUT is not set: cannot find callgrind's dump files")
        files = sorted(self.out_dir.glob(f"callgrind.{os.getpid()}.*"), key=lambda p: int(p.suffix[1:]))
        if len(files) < n:
            raise RuntimeError(f"callgrind wrote {len(files)} dump(s) into {self.out_dir}, expected {n}")
        out = [parse_dump(f) for f in files[-n:]]
        for f in files:
            f.unlink(missing_ok=True)
        return out

    def count(
        self,
        fn: Callable[[], object],
        calls: int = CALLS,
        warmup: int = WARMUP,
        extra: Callable[[], object] | None = None,
    ) -> list[dict[str, int]]:
        """Events of `calls` calls of fn (each followed by `extra` inside the counted region, when given).
        Python's cyclic garbage collector is run before each call and kept off during it: a collection that
        lands in one call and not another added ~20% to a small case's instructions (ORT's cae@32, measured)."""
        import gc

        was_enabled = gc.isenabled()
        gc.disable()
        self.lib.cx_start()
        try:
            for _ in range(warmup):
                fn()
                if extra:
                    extra()
            tag = b"convtx-call"
            for _ in range(calls):
                gc.collect()
                self.lib.cx_zero()
                fn()
                if extra:
                    extra()
                self.lib.cx_dump(tag)
        finally:
            self.lib.cx_stop()
            if was_enabled:
                gc.enable()
        return self._collect(calls)

    def spin_events(self, n: int) -> dict[str, int]:
        self.lib.cx_start()
        try:
            self.lib.cx_zero()
            self.lib.cx_spin(n)
            self.lib.cx_dump(b"convtx-spin")
        finally:
            self.lib.cx_stop()
        return self._collect(1)[0]


def count_case(fn: Callable[[], object], build_dir: Path, slowdown_pct: float = 0.0) -> Counts:
    """The record's `counts`: per counted call the metric and Ir, the median events, and — for measuring the
    gate's power only — a fixed spin after each call calibrated to add `slowdown_pct`% of the metric."""
    import numpy as np

    c = Counter(build_dir)
    injected = None
    extra = None
    if slowdown_pct:
        base = [estimated_cycles(e) for e in c.count(fn, calls=3)]
        probe_n = 200_000
        per_iter = estimated_cycles(c.spin_events(probe_n)) / probe_n
        n = max(1, round(slowdown_pct / 100 * float(np.median(base)) / per_iter))
        extra = lambda: c.lib.cx_spin(n)
        injected = {
            "pct": slowdown_pct,
            "spin_iterations": n,
            "unslowed_median": float(np.median(base)),
            "note": "test-only: a fixed integer loop after each call, sized to add pct% of the "
            "case's estimated cycles (bench --counts --inject-slowdown)",
        }
    evs = c.count(fn, extra=extra)
    metric = [estimated_cycles(e) for e in evs]
    if injected:
        injected["calibrated_pct"] = 100 * (float(np.median(metric)) / injected["unslowed_median"] - 1)
    med = {k: int(np.median([e[k] for e in evs])) for k in EVENTS}
    return Counts(
        tool="callgrind",
        metric=METRIC,
        samples=tuple(metric),
        median=float(np.median(metric)),
        ir=tuple(e["Ir"] for e in evs),
        events_median=med,
        calls=len(evs),
        warmup=WARMUP,
        injected=injected,
    )
