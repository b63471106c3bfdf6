"""Kill a sweep at random moments and resume it: does any record get lost or duplicated?

`python -m harness.chaos --cycles 20` (`make chaos`) starts `convtx bench` on the quick suite, SIGKILLs the
driver after a random delay, resumes with `--resume`, and repeats; after the last kill it resumes to the
end. It then compares the recorded case ids with the plan's: lost (planned, never recorded), duplicated
(recorded twice), unexpected (recorded, not planned). Exit 1 if any is non-zero.
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


def _bench(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", "bench", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def kill_resume_cycles(cycles: int, out: Path, bench_args: list[str], build_dir: Path, seed: int = 0,
                       max_delay_s: float = 15.0, say=print) -> dict:
    rng = random.Random(seed)
    kills, completed_early = [], 0
    for i in range(cycles):
        args = (["--resume", str(out)] if (out / "run.json").exists() else [*bench_args, "--out", str(out)])
        p = _bench([*args, "--build-dir", str(build_dir)])
        delay = rng.uniform(0.3, max_delay_s)
        try:
            p.wait(timeout=delay)
            completed_early += 1            # finished before the kill: the next cycle resumes a complete run
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
        n = sum(1 for _ in open(out / "results.jsonl")) if (out / "results.jsonl").exists() else 0
        kills.append({"cycle": i, "delay_s": round(delay, 2), "records_after": n})
        say(f"cycle {i + 1}/{cycles}: killed after {delay:.1f} s, {n} lines in results.jsonl")
    p = _bench(["--resume", str(out), "--build-dir", str(build_dir)])
    _, err = p.communicate(timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"final resume failed ({p.returncode}): {err.strip().splitlines()[-1:]}")
    meta = json.loads((out / "run.json").read_text())
    planned = _planned_ids(meta)
    ids = [json.loads(line)["case_id"] for line in (out / "results.jsonl").read_text().splitlines() if line]
    result = {"cycles": cycles, "completed_before_kill": completed_early, "planned": len(planned),
              "recorded": len(ids), "lost": len(planned - set(ids)), "duplicated": len(ids) - len(set(ids)),
              "unexpected": len(set(ids) - planned), "resumes": meta.get("resumed", 0), "kills": kills}
    return result


def _planned_ids(meta: dict) -> set[str]:
    from harness.prepare import ModelRef
    from harness.results import case_id
    from harness.sweep import Plan

    p = meta["plan"]
    refs = tuple(ModelRef(r["name"], r["size"], r["path"], tuple((n, tuple(s)) for n, s in r["shapes"]))
                 for r in p["refs"])
    plan = Plan(refs, tuple(p["lowerings"]), tuple(p["backends"]), tuple(p["batches"]))
    return {case_id(ref.label, lw, b, batch) for ref, batch, lw, b in plan.cases()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.chaos", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="build/chaos/run")
    ap.add_argument("--max-delay", type=float, default=15.0)
    ap.add_argument("bench_args", nargs="*", default=["--suite", "quick"],
                    help="arguments of the first `convtx bench` (default: --suite quick)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        import shutil
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    r = kill_resume_cycles(args.cycles, out, args.bench_args, Path("build"), args.seed, args.max_delay)
    (out.parent / "chaos.json").write_text(json.dumps(r, indent=2))
    print(f"{r['cycles']} kill/resume cycles ({r['completed_before_kill']} finished before their kill), "
          f"{r['resumes']} resumes: planned {r['planned']}, recorded {r['recorded']}, lost {r['lost']}, "
          f"duplicated {r['duplicated']}, unexpected {r['unexpected']}")
    return 1 if r["lost"] or r["duplicated"] or r["unexpected"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
