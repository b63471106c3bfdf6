"""How long a sweep has left: an estimate per case from earlier runs' records and from the cases already done.

A case costs two parts: running it (the time it held its worker) and its share of the compile-ahead (its
build's wall time divided by the builds running at once). A remaining case is expected to take what the same
case (model, lowering, backend, batch) took in the latest earlier run that has it, each part scaled by how this
run's cases of the same engine compare with theirs so far in that part (a re-run's builds are cache hits: that
part all but vanishes, the running part stays), else by how all of this run's cases compare; a case no earlier
run has is expected to take the mean of this run's cases of the same engine, else of all its cases. The sweep
prints the estimate on each progress line.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

HISTORY_RUNS = 5  # earlier run directories read for the estimate (the latest first)


def history(runs_root: Path | None, exclude: Path | None = None) -> dict[str, tuple[float, float]]:
    """case id -> (run s, build share s) (`case_parts`; (0, 0) for a case that never held a worker, a skip) in the
    latest earlier run that has it, from the last HISTORY_RUNS run directories under `runs_root` (their
    results.jsonl); unreadable lines are passed over."""
    out: dict[str, tuple[float, float]] = {}
    if runs_root is None or not runs_root.is_dir():
        return out
    dirs = sorted((d for d in runs_root.iterdir() if d.is_dir() and d != exclude), reverse=True)[:HISTORY_RUNS]
    for d in reversed(dirs):  # the latest last: it wins
        f = d / "results.jsonl"
        try:
            lines = f.read_text(errors="replace").splitlines() if f.is_file() and not f.is_symlink() else []
        except OSError:
            continue
        for ln in lines:
            try:
                r = json.loads(ln)
                cid = str(r["case_id"])
            except (ValueError, KeyError, TypeError):
                continue
            try:
                out[cid] = case_parts(r.get("details") or {})
            except (KeyError, TypeError, ValueError, AttributeError):  # never held a worker (a skip): no time
                out[cid] = (0.0, 0.0)
    return out


def case_parts(details: dict) -> tuple[float, float]:
    """(seconds the case held its worker to run, its share of the compile-ahead). A case whose build was its
    result (skipped or failed there) ran nothing more. Raises KeyError without `wall`."""
    w = details["wall"]
    ahead = details.get("compiled_ahead") or {}
    share = float(ahead.get("wall_s") or 0.0) / max(1, int(ahead.get("slots") or 1))
    if ahead and "load_s" not in ahead:  # the build's own record: its wall is the build's
        return 0.0, share
    return max(0.0, float(w["end"]) - float(w["start"])), share


def fmt_s(sec: float) -> str:
    sec = int(round(max(0.0, sec)))
    return f"{sec // 3600}:{sec % 3600 // 60:02d}:{sec % 60:02d}"


class Eta:
    """The remaining time of a sweep over `cases` (case id -> backend)."""

    def __init__(self, cases: dict[str, str], past: dict[str, tuple[float, float]], clock=time.monotonic):
        self.todo = dict(cases)
        self.past = past
        self.clock = clock
        self.t0 = clock()
        self.done_s: dict[str, list[float]] = defaultdict(list)  # backend -> seconds of the cases done
        # per part (0 run, 1 build share) and engine ("" = all): [Σ this run's seconds, Σ the same cases' earlier]
        self.ratio: dict[tuple[int, str], list[float]] = defaultdict(lambda: [0.0, 0.0])

    def done(self, case_id: str, parts: tuple[float, float] | None) -> None:
        b = self.todo.pop(case_id, None)
        if b is None or parts is None:
            return
        self.done_s[b].append(sum(parts))
        if case_id in self.past:
            for part in (0, 1):
                for k in (b, ""):
                    self.ratio[(part, k)][0] += parts[part]
                    self.ratio[(part, k)][1] += self.past[case_id][part]

    def _scale(self, part: int, b: str) -> float:
        for k in (b, ""):
            num, den = self.ratio.get((part, k), (0.0, 0.0))
            if den > 0:
                return num / den
        return 1.0

    def remaining_s(self) -> float | None:
        """Seconds left, or None while nothing is known to estimate from."""
        everything = [s for v in self.done_s.values() for s in v]
        mean_all = sum(everything) / len(everything) if everything else None
        left = 0.0
        for cid, b in self.todo.items():
            if cid in self.past:
                left += sum(self.past[cid][p] * self._scale(p, b) for p in (0, 1))
            elif self.done_s.get(b):
                left += sum(self.done_s[b]) / len(self.done_s[b])
            elif mean_all is not None:
                left += mean_all
            else:
                return None
        return left

    def text(self) -> str:
        left = self.remaining_s()
        return f"{fmt_s(self.clock() - self.t0)}, ETA {fmt_s(left) if left is not None else '?'}"
