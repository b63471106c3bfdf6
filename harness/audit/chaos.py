"""Kill a sweep at random moments and resume it: does any record get lost or duplicated?

`python -m harness.audit.chaos --cycles 20` (`make chaos`) runs `convtx bench` (quick suite) once uninterrupted,
then, per cycle, starts it afresh, SIGKILLs the driver at a random moment, and finishes it with `--resume`.
Each cycle's case ids are compared with the uninterrupted run's: lost, duplicated, unexpected. Exit 1 if
any is non-zero. Results: build/chaos/chaos.json.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.core import safefs
from harness.core.rundir import read_results


def _bench(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "bench", "--no-calibrate", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ids(run: Path) -> list[str]:
    """The case id of every complete record, in file order (a line torn by the kill is not a record)."""
    path = run / "results.jsonl"
    return [r.case_id for r in read_results(path)] if path.exists() else []


def _finish(run: Path, build_dir: Path) -> None:
    p = _bench(["--resume", str(run), "--build-dir", str(build_dir)])
    _, err = p.communicate(timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"resume of {run} failed ({p.returncode}): {err.strip().splitlines()[-1:]}")


def kill_resume_cycles(
    cycles: int, out: Path, bench_args: list[str], build_dir: Path, seed: int = 0, say=print
) -> dict:
    """One uninterrupted run sets the expected cases and the duration T; then each cycle starts the same
    run afresh, SIGKILLs the driver at a uniformly random moment in (0.05 T, 0.95 T), resumes it to the
    end, and compares its case ids with the uninterrupted run's."""
    rng = random.Random(seed)
    for name in ("warm-up", "uninterrupted"):  # the first fills the caches, so T is a warm run's duration
        baseline = out / name
        t0 = time.monotonic()
        p = _bench([*bench_args, "--out", str(baseline), "--build-dir", str(build_dir)])
        _, err = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise RuntimeError(f"{name} run failed ({p.returncode}): {err.strip().splitlines()[-1:]}")
        duration = time.monotonic() - t0
    expected = set(_ids(baseline))
    rows = []
    for i in range(cycles):
        run = out / f"cycle{i:02d}"
        delay = rng.uniform(0.05, 0.95) * duration
        p = _bench([*bench_args, "--out", str(run), "--build-dir", str(build_dir)])
        try:
            p.wait(timeout=delay)
            killed = False
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            killed = True
        at_kill = len(_ids(run))
        _finish(run, build_dir)
        ids = _ids(run)
        row = {
            "cycle": i,
            "delay_s": round(delay, 2),
            "killed": killed,
            "records_at_kill": at_kill,
            "recorded": len(ids),
            "lost": len(expected - set(ids)),
            "duplicated": len(ids) - len(set(ids)),
            "unexpected": len(set(ids) - expected),
        }
        rows.append(row)
        say(
            f"cycle {i + 1}/{cycles}: {'killed' if killed else 'finished before the kill'} at {delay:.1f} s "
            f"with {at_kill} records; after resume {len(ids)} records, lost {row['lost']}, "
            f"duplicated {row['duplicated']}"
        )
    return {
        "cycles": cycles,
        "uninterrupted_s": round(duration, 1),
        "expected": len(expected),
        "killed": sum(r["killed"] for r in rows),
        "lost": sum(r["lost"] for r in rows),
        "duplicated": sum(r["duplicated"] for r in rows),
        "unexpected": sum(r["unexpected"] for r in rows),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.audit.chaos", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="build/chaos")
    ap.add_argument(
        "bench_args",
        nargs="*",
        default=["--suite", "quick"],
        help="arguments of the first `convtx bench` (default: --suite quick)",
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    r = kill_resume_cycles(args.cycles, out, args.bench_args, Path("build"), args.seed)
    safefs.write_atomic(out / "chaos.json", json.dumps(r, indent=2))
    print(
        f"{r['cycles']} cycles, {r['killed']} killed mid-run (uninterrupted run: {r['expected']} cases in "
        f"{r['uninterrupted_s']} s): lost {r['lost']}, duplicated {r['duplicated']}, "
        f"unexpected {r['unexpected']}"
    )
    return 1 if r["lost"] or r["duplicated"] or r["unexpected"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
