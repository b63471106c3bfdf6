"""How long a sweep has left: an estimate per case from earlier runs' records and from the cases already done.

A remaining case is expected to take what the same case (model, lowering, backend, batch) took in the latest
earlier run that has it, scaled by how this run compares with those runs so far (a re-run whose builds are
cached goes faster than the run that built them); a case no earlier run has is expected to take the mean of
this run's cases of the same engine, else of all its cases. The sweep prints the estimate on each progress line.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

HISTORY_RUNS = 5  # earlier run directories read for the estimate (the latest first)


def history(runs_root: Path | None, exclude: Path | None = None) -> dict[str, float]:
    """case id -> seconds the case held its worker (`details.wall`) in the latest earlier run that has it, from the
    last HISTORY_RUNS run directories under `runs_root` (their results.jsonl); unreadable lines are passed over."""
    out: dict[str, float] = {}
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
                out[str(r["case_id"])] = case_seconds(r.get("details") or {})
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
    return out


def case_seconds(details: dict) -> float:
    """What a case cost the sweep: the time it held its worker (`wall`) plus its share of the compile-ahead
    (its build's wall time divided by the builds running at once). Raises KeyError without `wall`."""
    w = details["wall"]
    ahead = details.get("compiled_ahead") or {}
    share = float(ahead.get("wall_s") or 0.0) / max(1, int(ahead.get("slots") or 1))
    return max(0.0, float(w["end"]) - float(w["start"])) + share


def fmt_s(sec: float) -> str:
    sec = int(round(max(0.0, sec)))
    return f"{sec // 3600}:{sec % 3600 // 60:02d}:{sec % 60:02d}"


class Eta:
    """The remaining time of a sweep over `cases` (case id -> backend)."""

    def __init__(self, cases: dict[str, str], past: dict[str, float], clock=time.monotonic):
        self.todo = dict(cases)
        self.past = past
        self.clock = clock
        self.t0 = clock()
        self.done_s: dict[str, list[float]] = defaultdict(list)  # backend -> seconds of the cases done
        self.ratio_num = self.ratio_den = 0.0  # Σ this run's seconds / Σ the same cases' earlier seconds

    def done(self, case_id: str, seconds: float | None) -> None:
        b = self.todo.pop(case_id, None)
        if b is None or seconds is None:
            return
        self.done_s[b].append(seconds)
        if case_id in self.past:
            self.ratio_num += seconds
            self.ratio_den += self.past[case_id]

    def remaining_s(self) -> float | None:
        """Seconds left, or None while nothing is known to estimate from."""
        everything = [s for v in self.done_s.values() for s in v]
        mean_all = sum(everything) / len(everything) if everything else None
        scale = self.ratio_num / self.ratio_den if self.ratio_den > 0 else 1.0
        left = 0.0
        for cid, b in self.todo.items():
            if cid in self.past:
                left += self.past[cid] * scale
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
