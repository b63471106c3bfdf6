"""The ledger of known upstream bugs (harness/checking/known.py) and its reproducers (docs/upstream/).

Every reproducer the ledgers name runs here, once: REPRODUCED (the bug still shows) is the expected, strict
failure; FIXED shows as an unexpected pass (XPASS(strict), a failed test: drop the ledger entry); a broken
reproducer (an import error, a traceback, no verdict line) is an ordinary failure; CANNOT RUN (no GPU) skips with
the script's reason, after the script has built what it can build here.
"""

from __future__ import annotations

import re

import pytest

from harness.audit import conformance
from harness.checking import known
from harness.measure import cuda

from ..helpers import ROOT, BugStillPresent, run_reproducer

UPSTREAM = "docs/upstream/"


def _ledger_reproducers() -> dict[str, list[str]]:
    """docs/upstream/*.py path -> the ids of the ledger entries it reproduces (the divergence ledger, the CUDA
    build ledger, the workarounds, the performance cliffs, and the conformance ledger's reasons, which name their reproducer in the
    text)."""
    by_script: dict[str, list[str]] = {}
    for e in known.LEDGER:
        if e.reproducer.startswith(UPSTREAM):
            by_script.setdefault(e.reproducer, []).append(e.id)
    for g in known.GRAPH_LEDGER:
        by_script.setdefault(g.reproducer, []).append(g.id)
    for kid, *_, repro in known.CUDA_BUILD_LEDGER:
        by_script.setdefault(repro, []).append(kid)
    for kid, *_, repro in known.WORKAROUND_LEDGER:
        by_script.setdefault(repro, []).append(kid)
    for kid, *_, repro in known.PERFORMANCE_LEDGER:
        by_script.setdefault(repro, []).append(kid)
    for x in conformance.LEDGER:
        for repro in re.findall(r"docs/upstream/\w+\.py", x.reason):
            ids = by_script.setdefault(repro, [])
            if f"conformance {x.backend} {x.pattern}" not in ids:
                ids.append(f"conformance {x.backend} {x.pattern}")
    return by_script


REPRODUCERS = _ledger_reproducers()
# What each reproducer must print besides its verdict: the old per-script checks, kept. `always`: on every
# outcome (what is built here, e.g. CUDA code on a machine without a GPU); `reproduced`: what the bug looks like.
ALWAYS = {
    "docs/upstream/tvm_cuda_output_padding.py": ("built for sm_80",),
    "docs/upstream/tvm_cuda_conv1d_shared_memory.py": ("built for sm_80",),
    "docs/upstream/tvm_cuda_explicit_pads_cache_write.py": ("LLVM: builds",),
    "docs/upstream/tvm_cuda_grouped_conv_cross_thread_reduction.py": ("2 -> 2, no pads: built for sm_80",),
}
REPRODUCED = {
    "docs/upstream/openvino_maxpool_indices_reference_kernel.py": ("with Indices ['Reference:ref_f32']",),
    "docs/upstream/tvm_split_layout_rewrite_opaque_kernel.py": ("legalised kernels ['cumsum']",),
    "docs/upstream/tvm_cuda_conv1d_shared_memory.py": ("REPRODUCED: largest __shared__ buffer 524288 bytes",),
    "docs/upstream/tvm_cuda_explicit_pads_cache_write.py": ("not properly inlined",),
    "docs/upstream/tvm_cuda_grouped_conv_cross_thread_reduction.py": ("Cross-thread reduction requires",),
}


def test_every_reproducer_is_in_a_ledger_and_exists():
    scripts = {f"{UPSTREAM}{p.name}" for p in (ROOT / UPSTREAM).glob("*.py") if not p.name.startswith("_")}
    assert scripts, "no reproducers found"
    assert not scripts - set(REPRODUCERS), (
        f"orphaned reproducers (no ledger entry names them): {scripts - set(REPRODUCERS)}"
    )
    assert not set(REPRODUCERS) - scripts, f"the ledger names missing reproducers: {set(REPRODUCERS) - scripts}"


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(
            s,
            id=s.removeprefix(UPSTREAM),
            marks=pytest.mark.xfail(
                strict=True,
                raises=BugStillPresent,
                reason=f"upstream bug still present; an unexpected pass means upstream fixed {', '.join(ids)}: "
                "drop the ledger entry",
            ),
        )
        for s, ids in sorted(REPRODUCERS.items())
    ],
)
def test_ledger_reproducer(script):
    verdict, p = run_reproducer(script)
    for text in ALWAYS.get(script, ()) + (REPRODUCED.get(script, ()) if verdict == "REPRODUCED" else ()):
        assert text in p.stdout, f"broken reproducer: {text!r} not in the output of {script}:\n{p.stdout}{p.stderr}"
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith(f"{verdict}:"))
    if verdict == "CANNOT RUN":
        assert not cuda.probe().runnable, f"{script} cannot run on a machine with a GPU: {line}"
        pytest.skip(f"{script}: {line}")
    if verdict == "REPRODUCED":
        raise BugStillPresent(f"{script}: {line}")
    # FIXED: this returns, and the strict xfail turns the pass into a failure naming the entry to drop


def test_known_cuda_build_failure_is_matched_narrowly():
    """wave1d's long Conv1d gets a 512 KiB shared-memory buffer from dlight (make build-cuda found it): the
    ledger entry explains exactly that failure — not another case, not another ptxas error."""
    err = "ptxas error   : Entry function 'k' uses too much shared data (0x80000 bytes, 0xc000 max)"
    kid, why, repro = known.match_cuda_build("wave1d@8192/phase/tvm-cuda/b1", err)
    assert kid == "tvm-cuda-conv1d-shared-memory" and repro in REPRODUCERS and "shared memory" in why
    assert known.match_cuda_build("unet@256/phase/tvm-cuda/b1", err) is None
    assert known.match_cuda_build("wave1d@8192/phase/tvm-cuda/b1", "ptxas error: too many resources") is None


def test_conformance_ledger_explains_the_explicit_pads_cuda_build_failure():
    """`convtx conformance --backends tvm-cuda` found dlight failing on ConvTranspose + Pad (explicit_pads): three
    cases, each naming the reproducer that test_ledger_reproducer runs."""
    entries = [e for e in conformance.LEDGER if e.backend == "tvm-cuda" and e.pattern.endswith("/explicit_pads")]
    assert len(entries) == 3
    assert all("docs/upstream/tvm_cuda_explicit_pads_cache_write.py" in e.reason for e in entries)
