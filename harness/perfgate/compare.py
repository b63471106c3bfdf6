"""The performance-regression gate: a current run compared with a baseline, case by case.

A side (baseline or current) is a run directory, or a directory of rounds (`bench --rounds R` writes
OUT/round-01 …: complete runs of the same plan, each with fresh worker processes). Rounds matter because a
case's speed has a per-process component (thread placement, memory layout, a neighbour busy for seconds)
that no number of samples inside one process averages away.

Per case:
- statistic: each round's median latency; a side's value is its fastest round's (noise on a shared machine
  — a neighbour busy for a minute, a process whose threads landed badly — only ever slows a round down,
  while a real regression slows every round); the ratio is current value / baseline value;
- significance: a one-sided Mann-Whitney U test on the raw samples of those two rounds, and a bootstrap
  interval of the ratio of their medians (reported);
- a regression is a ratio above 1 + threshold with p < ALPHA (an improvement, the mirror image); anything
  else is "no change";
- numbers: a case that passed in the baseline and now mismatches or errors fails the gate, whatever its
  speed.

Mode: on the same machine the latencies themselves are compared ("absolute"); when the machines differ, each
round's median is first divided by the median of the reference kernel timed between that case's calls in
that round (timing.REFERENCE_KERNEL), and those unitless ratios are compared ("ratio").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import ConvtxError
from harness.core.markdown import table_lines
from harness.core.records import Record
from harness.core.rundir import read_run
from harness.core.tables import Column, Table, code

DEFAULT_THRESHOLD_PCT = 10.0
# counts (bench --counts) move by about 1% between processes (docs/perf-gate.md measured it), not by tens
DEFAULT_COUNTS_PCT = 5.0
CONFIDENCE = 0.95
ALPHA = 0.01  # one-sided Mann-Whitney U
# Counts: calls agree to within ~1.5% (the first counted call the highest), except for the rare call that did
# extra work the others did not — ONNX Runtime, 10 of 123 case-runs of the count study: one or two calls
# 3–61% above the rest. Such calls (more than COUNT_OUTLIER_PCT above their side's median) are set aside
# before the test; with five calls a side, a test on 4 or 3 of them cannot reach p < 0.01 even when every
# call of one side is above every call of the other (4 v 4: p = 1/70, 3 v 5: 1/56), so counts use
# ALPHA_COUNTS. A false alarm still needs a shift beyond the threshold, which counts do not show by chance
# (the largest A/A change in the study: docs/perf-gate.md).
COUNT_OUTLIER_PCT = 2.0
ALPHA_COUNTS = 0.02
N_BOOT = 2000
MACHINE_KEYS = ("model", "logical_cpus", "flags")
SEVERITY = {"ok": 0, "skipped": 0, "mismatch": 2, "error": 2}


# ----------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Round:
    """One run directory of a side, as harness.core.rundir reads it: run.json and the last record of each case."""

    path: Path
    meta: Mapping[str, Any]
    records: Mapping[str, Record]


@dataclass
class Side:
    path: Path
    rounds: list[Round]

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.rounds[0].meta

    def case_ids(self) -> list[str]:
        return list(dict.fromkeys(c for r in self.rounds for c in r.records))


def _read_round(path: Path) -> Round:
    if not (path / "run.json").is_file() or not (path / "results.jsonl").is_file():
        raise ConvtxError(f"{path}: not a convtx run directory (needs run.json and results.jsonl)")
    run = read_run(path)
    return Round(run.path, run.meta, run.by_case())


def load_side(path: str | Path) -> Side:
    """A run directory, or a directory whose round-* subdirectories are run directories."""
    p = Path(path)
    if not p.is_dir():
        raise ConvtxError(f"{p}: no such run directory")
    if (p / "run.json").exists():
        return Side(p, [_read_round(p)])
    rounds = sorted(d for d in p.glob("round-*") if d.is_dir())
    if not rounds:
        raise ConvtxError(f"{p}: not a convtx run directory (no run.json, no round-* directories)")
    return Side(p, [_read_round(d) for d in rounds])


def _rules(p: Path, data, default_pct: float, where: str) -> tuple[float, tuple[tuple[str, float], ...]]:
    if not isinstance(data, dict) or not isinstance(data.get("cases", {}), dict):
        raise ConvtxError(f'{p}: expected {where}{{"default_pct": PCT, "cases": {{"<case-id glob>": PCT}}}}')
    allowed = {"default_pct", "cases", "comment"} | ({"ratio", "counts"} if not where else set())
    unknown = {k for k in data if not k.startswith("_")} - allowed
    if unknown:
        raise ConvtxError(
            f"{p}: unknown key(s) {sorted(unknown)} {where}(expected {', '.join(sorted(allowed))}; "
            f"keys starting with '_' are notes)"
        )
    rules = []
    for glob, pct in list(data.get("cases", {}).items()) + [("*", data.get("default_pct", default_pct))]:
        if not isinstance(pct, (int, float)) or isinstance(pct, bool) or not 0 < pct < 1000:
            raise ConvtxError(
                f"{p}: threshold for {glob!r} {where}must be a number of percent in (0, 1000), got {pct!r}"
            )
        rules.append((glob, float(pct)))
    return rules[-1][1], tuple(rules[:-1])


def load_thresholds(path: str | Path | None, default_pct: float) -> Thresholds:
    """`--per-case FILE`: JSON {"default_pct": 10, "cases": {"<case-id glob>": pct, …}, "ratio": {…the same…}};
    the first glob (in file order) that matches a case id gives its threshold. "ratio" (optional) holds the
    thresholds of ratio mode, whose noise is larger (docs/perf-gate.md); without it ratio mode uses the
    others. Keys starting with '_' are notes (where the values came from) and are ignored."""
    if path is None:
        return Thresholds(default_pct, ())
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as e:
        raise ConvtxError(f"{p}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ConvtxError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    default, rules = _rules(p, data, default_pct, "")
    ratio = counts = None
    if isinstance(data, dict) and "ratio" in data:
        ratio = Thresholds(*_rules(p, data["ratio"], default, "in 'ratio' "))
    if isinstance(data, dict) and "counts" in data:
        counts = Thresholds(*_rules(p, data["counts"], DEFAULT_COUNTS_PCT, "in 'counts' "))
    return Thresholds(default, rules, ratio, str(p), counts)


@dataclass(frozen=True)
class Thresholds:
    default_pct: float
    rules: tuple[tuple[str, float], ...]
    ratio: Thresholds | None = None  # ratio mode's own, when the file gives them
    source: str | None = None
    counts: Thresholds | None = None  # counts mode's own; without them DEFAULT_COUNTS_PCT

    def for_mode(self, mode: str) -> Thresholds:
        if mode == "ratio" and self.ratio is not None:
            return self.ratio
        if mode == "counts":
            return self.counts if self.counts is not None else Thresholds(self.counts_default, ())
        return self

    @property
    def counts_default(self) -> float:
        return self.counts.default_pct if self.counts is not None else DEFAULT_COUNTS_PCT

    def for_case(self, case_id: str, mode: str = "absolute") -> float:
        t = self.for_mode(mode)
        return next((pct for glob, pct in t.rules if fnmatchcase(case_id, glob)), t.default_pct)


# ----------------------------------------------------------------------------------------------- baselines


def load_confirm(path: str | Path) -> dict[str, str]:
    """`compare --confirm FILE`: the --json of the first comparison; case id → verdict."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
        return {c["case_id"]: c["verdict"] for c in data["cases"]}
    except OSError as e:
        raise ConvtxError(f"{p}: cannot read ({e.strerror})") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ConvtxError(f"{p}: not a `convtx compare --json` file") from None


def counter_of(meta: dict) -> dict | None:
    """A count run's identity (run.json config.counter, harness/measure/counting.py), None for a timed run."""
    c = meta.get("config", {}).get("counter")
    return c if isinstance(c, dict) and c.get("tool") else None


def kind_of(meta: dict) -> tuple:
    """What a baseline must share with the current run to be compared precisely: for counts, the counter's
    identity (valgrind, the CPU it presents, caches, metric) and threads; for times, the machine."""
    c = counter_of(meta)
    if c:
        return ("counts", c.get("slug"), meta.get("config", {}).get("threads"))
    return ("time", *sorted(machine_of(meta).items()))


def machine_slug(meta: dict) -> str:
    """A directory name for a kind of machine: CPU model, logical CPUs, threads and a digest of the ISA flags
    (the same fields `choose_mode` compares), e.g. intel-xeon-processor-2c-2t-1a2b3c; for a count run, the
    counter's slug and threads (callgrind-3.19.0-1a2b3c4d5e-1t): counts do not depend on the host's CPU."""
    import hashlib
    import re

    c = counter_of(meta)
    if c:
        return f"{c.get('slug')}-{meta.get('config', {}).get('threads')}t"
    m = machine_of(meta)
    model = re.sub(r"\((r|tm)\)|cpu|@.*", "", (m["model"] or "unknown").lower())
    model = re.sub(r"[^a-z0-9]+", "-", model).strip("-")
    flags = hashlib.sha256(" ".join(m["flags"] or ()).encode()).hexdigest()[:6]
    return f"{model}-{m['logical_cpus']}c-{m['threads']}t-{flags}"


def pick_baseline(path: str | Path, cur: Side) -> tuple[Side, str | None]:
    """BASELINE may be one side (a run directory or a directory of rounds) or a directory of per-machine
    baselines (`reports/baseline/<machine-slug>/round-*`, as `make perf-baseline` writes them): then the one
    recorded on the current side's kind of machine is taken (absolute mode), else the first, compared in
    ratio mode, and the returned note says so."""
    p = Path(path)
    if not p.is_dir() or (p / "run.json").exists() or any(p.glob("round-*")):
        return load_side(p), None
    subs = sorted(d for d in p.iterdir() if d.is_dir() and ((d / "run.json").exists() or any(d.glob("round-*"))))
    if not subs:
        raise ConvtxError(f"{p}: not a convtx run directory, nor a directory of per-machine baselines")
    sides = [load_side(d) for d in subs]
    want = kind_of(cur.meta)
    for s in sides:
        if kind_of(s.meta) == want:
            return s, None
    counting = counter_of(cur.meta) is not None
    same_kind = [s for s in sides if (counter_of(s.meta) is not None) == counting]
    if not same_kind:
        what = "count" if counting else "timed"
        raise ConvtxError(
            f"{p}: no {what} baseline among {', '.join(d.name for d in subs)} (a {what} run is "
            f"compared with a {what} baseline); record one with `make perf-baseline`"
        )
    if counting:
        return same_kind[0], (
            f"no count baseline with this counter ({machine_slug(cur.meta)}; recorded: "
            f"{', '.join(s.path.name for s in same_kind)}): compared with {same_kind[0].path}, "
            f"but counts from another valgrind, presented CPU or cache model can differ for "
            f"that reason alone; record one with `make perf-baseline`"
        )
    return same_kind[0], (
        f"no baseline recorded on this kind of machine ({machine_slug(cur.meta)}; recorded: "
        f"{', '.join(s.path.name for s in same_kind)}): compared with {same_kind[0].path}; record "
        f"one here with `make perf-baseline` for the precise (absolute) comparison"
    )


# ----------------------------------------------------------------------------------------------- mode


def machine_of(meta: dict) -> dict:
    m = meta.get("machine", {})
    return {
        "model": m.get("cpu_model"),
        "logical_cpus": m.get("logical_cpus"),
        "flags": tuple(sorted(m.get("flags") or [])) or None,
        "threads": meta.get("config", {}).get("threads"),
    }


def _describe_machine(meta: dict) -> str:
    m = meta.get("machine", {})
    return (
        f"{m.get('cpu_model') or 'unknown CPU'}, {m.get('logical_cpus') or '?'} logical CPUs, "
        f"{meta.get('config', {}).get('threads', '?')} threads"
    )


def choose_mode(base: Side, cur: Side, requested: str = "auto") -> tuple[str, str]:
    """("absolute" | "ratio" | "counts", why)."""
    bc, cc = counter_of(base.meta), counter_of(cur.meta)
    if bc or cc:
        if not (bc and cc):
            raise ConvtxError(
                f"{(cur if bc else base).path}: a timed run cannot be compared with a count run "
                f"({(base if bc else cur).path} was counted with `bench --counts`)"
            )
        if requested not in ("auto", "counts"):
            raise ConvtxError(f"--mode {requested}: these are count runs (bench --counts); their mode is counts")
        why = (
            f"both runs counted with callgrind (valgrind {cc.get('valgrind')}, presenting "
            f"{cc.get('cpu', {}).get('brand')}; {cc.get('metric_text', cc.get('metric'))}), so each case's "
            f"counts are compared; they do not depend on how busy the machine was"
        )
        if bc.get("slug") != cc.get("slug"):
            why += (
                f"; NOTE the counters differ (baseline {bc.get('slug')}, current {cc.get('slug')}: another "
                f"valgrind, presented CPU or cache model), which alone can change counts"
            )
        return "counts", why
    if requested == "counts":
        raise ConvtxError("--mode counts: these are timed runs; count runs come from `bench --counts`")
    a, b = machine_of(base.meta), machine_of(cur.meta)
    same = all(a[k] == b[k] for k in (*MACHINE_KEYS, "threads")) and a["model"] is not None
    if requested == "absolute":
        why = "requested (--mode absolute)"
        if not same:
            why += (
                f"; note the machines differ (baseline: {_describe_machine(base.meta)}; current: "
                f"{_describe_machine(cur.meta)})"
            )
        return "absolute", why
    if requested == "ratio":
        return "ratio", (
            "requested (--mode ratio): each case's latency divided by the reference kernel timed "
            "between its calls in the same round"
        )
    if same:
        return "absolute", (
            f"both runs on the same kind of machine ({_describe_machine(cur.meta)}, same ISA "
            f"flags), so latencies are compared directly"
        )
    diff = [k for k in (*MACHINE_KEYS, "threads") if a[k] != b[k]]
    return "ratio", (
        f"the machines differ ({', '.join(diff).replace('flags', 'ISA flags')}: baseline "
        f"{_describe_machine(base.meta)}; current {_describe_machine(cur.meta)}), so each case is "
        f"compared as its latency over the reference kernel timed between its calls in the same round"
    )


# ----------------------------------------------------------------------------------------------- statistics


def _round_samples(rec: Record, mode: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    if mode == "counts":
        s = np.asarray(rec.counts.samples if rec.counts else [], dtype=np.float64)
        return (s, None) if s.size else None
    lat = rec.latency_ms
    s = np.asarray(lat.samples if lat else [], dtype=np.float64)
    if s.size == 0:
        return None
    if mode == "absolute":
        return s, None
    ref = np.asarray(lat.reference.samples if lat.reference else [], dtype=np.float64)
    if ref.size == 0:
        return None
    return s, ref


def _measured_rounds(side: Side, case_id: str, mode: str) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The samples of every round that measured the case (ok or mismatch) with what `mode` compares."""
    return [
        x
        for r in side.rounds
        if case_id in r.records and r.records[case_id].status in ("ok", "mismatch")
        for x in [_round_samples(r.records[case_id], mode)]
        if x is not None
    ]


def _round_value(s: np.ndarray, ref: np.ndarray | None) -> float:
    return float(np.median(s) / (np.median(ref) if ref is not None else 1.0))


def _normalised(s: np.ndarray, ref: np.ndarray | None) -> np.ndarray:
    return s / np.median(ref) if ref is not None else s


def _boot_medians(s: np.ndarray, ref: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """N_BOOT bootstrap replicates of one round's value (its samples resampled; the reference's too)."""
    med = np.empty(N_BOOT)
    rmed = np.ones(N_BOOT)
    for lo in range(0, N_BOOT, 250):  # in slices: a round can hold thousands of samples
        n = min(250, N_BOOT - lo)
        med[lo : lo + n] = np.median(s[rng.integers(0, s.size, size=(n, s.size))], axis=1)
        if ref is not None:
            rmed[lo : lo + n] = np.median(ref[rng.integers(0, ref.size, size=(n, ref.size))], axis=1)
    return med / rmed


def _trim_outliers(s: np.ndarray) -> np.ndarray:
    """Counts: the calls of one round without those more than COUNT_OUTLIER_PCT above its median."""
    keep = s[s <= np.median(s) * (1 + COUNT_OUTLIER_PCT / 100)]
    return keep if keep.size >= 3 else s


def case_statistics(base_rounds, cur_rounds, seed: int = 0, interval: bool = True, mode: str = "absolute") -> dict:
    """From per-round (samples, reference samples or None): each side's value is its fastest round's median
    (over the reference's median in ratio mode); the ratio is current / baseline; the Mann-Whitney U test
    (one-sided) and the bootstrap interval of the ratio of medians are computed on the raw samples of those
    two rounds."""
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(seed)
    bv = np.array([_round_value(s, r) for s, r in base_rounds])
    cv = np.array([_round_value(s, r) for s, r in cur_rounds])
    bi, ci = int(np.argmin(bv)), int(np.argmin(cv))
    ratio = float(cv[ci] / bv[bi])
    lo = hi = float("nan")  # the interval is reported, not used by the verdict
    if interval:
        boot = _boot_medians(*cur_rounds[ci], rng) / _boot_medians(*base_rounds[bi], rng)
        lo, hi = np.quantile(boot, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    pb, pc = _normalised(*base_rounds[bi]), _normalised(*cur_rounds[ci])
    trimmed = [0, 0]
    if mode == "counts":
        tb, tc = _trim_outliers(pb), _trim_outliers(pc)
        trimmed = [int(pb.size - tb.size), int(pc.size - tc.size)]
        pb, pc = tb, tc
    p_slower = float(mannwhitneyu(pc, pb, alternative="greater").pvalue)
    p_faster = float(mannwhitneyu(pc, pb, alternative="less").pvalue)
    return {
        "baseline": float(bv[bi]),
        "current": float(cv[ci]),
        "ratio": ratio,
        "ci": [float(lo), float(hi)],
        "p_slower": p_slower,
        "p_faster": p_faster,
        "baseline_rounds": bv.tolist(),
        "current_rounds": cv.tolist(),
        "baseline_fastest_round": bi + 1,
        "current_fastest_round": ci + 1,
        "n_baseline": int(pb.size),
        "n_current": int(pc.size),
        "outliers_set_aside": trimmed,
    }


# ----------------------------------------------------------------------------------------------- the gate


@dataclass
class CaseResult:
    case_id: str
    verdict: str  # regression | unconfirmed | improvement | no change | numerics | fixed |
    # still mismatching | not compared | new
    threshold_pct: float | None = None
    stats: dict | None = None
    baseline_status: str | None = None
    current_status: str | None = None
    note: str = ""

    @property
    def fails(self) -> bool:
        return self.verdict in ("regression", "numerics")


@dataclass
class Comparison:
    baseline: Side
    current: Side
    mode: str
    mode_why: str
    cases: list[CaseResult]
    context: list[str] = field(default_factory=list)
    thresholds_note: str = ""

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases if c.fails]

    def to_json(self) -> dict:
        return {
            "baseline": str(self.baseline.path),
            "current": str(self.current.path),
            "mode": self.mode,
            "mode_why": self.mode_why,
            "passed": not self.failed,
            "context": self.context,
            "rule": rule_text(self.mode),
            "cases": [c.__dict__ for c in self.cases],
        }


def _worst_status(side: Side, case_id: str) -> tuple[str | None, Record | None]:
    recs = [r.records[case_id] for r in side.rounds if case_id in r.records]
    if not recs:
        return None, None
    worst = max(recs, key=lambda r: SEVERITY.get(r.status, 2))
    if all(r.status == "skipped" for r in recs):
        return "skipped", recs[0]
    if worst.status == "skipped":  # some rounds ran it, some skipped: the ones that ran count
        worst = next(r for r in recs if r.status != "skipped")
    return worst.status, worst


def _context(base: Side, cur: Side) -> list[str]:
    out = []
    bm, cm = base.meta, cur.meta
    for side, name in ((base, "baseline"), (cur, "current")):
        incomplete = [r.path.name for r in side.rounds if r.meta.get("status") != "complete"]
        if incomplete:
            out.append(
                f"{name}: {len(incomplete)} round(s) did not complete ({', '.join(incomplete)}); "
                f"their recorded cases are used"
            )
        injected = {tuple(x) for r in side.rounds for x in r.meta.get("config", {}).get("inject_slowdown", [])}
        if injected:
            out.append(f"{name}: carries a TEST-ONLY injected slowdown {sorted(injected)} (bench --inject-slowdown)")
    bv, cv = bm.get("versions", {}), cm.get("versions", {})
    changed = [f"{k} {bv.get(k)} → {cv.get(k)}" for k in sorted(set(bv) | set(cv)) if bv.get(k) != cv.get(k)]
    if changed:
        out.append("versions differ: " + "; ".join(changed))
    bt, ct = bm.get("config", {}).get("timing"), cm.get("config", {}).get("timing")
    if bt != ct:
        out.append(f"timing budgets differ (baseline {bt}; current {ct})")
    if bm.get("suite") != cm.get("suite"):
        out.append(f"suites differ (baseline {bm.get('suite')}, current {cm.get('suite')})")
    return out


def rule_text(mode: str = "absolute") -> str:
    if mode == "counts":
        return (
            f"each side's value for a case is the median of its counted calls (callgrind's estimated cycles) "
            f"in its lowest round; a case regresses when the current value exceeds the baseline's by more "
            f"than its threshold AND a one-sided Mann-Whitney U test on the counted calls of those two rounds "
            f"gives p < {ALPHA_COUNTS:g} (a call more than {COUNT_OUTLIER_PCT:g}% above its side's median — extra "
            f"work the other calls did not do — set aside first); an improvement is the mirror image; the {CONFIDENCE:.0%} interval is a "
            f"bootstrap of the ratio of their medians; a case that passed numerically in the baseline and now "
            f"mismatches or errors fails whatever its counts"
        )
    return (
        f"each side's value for a case is the median latency of its fastest round (noise on a shared machine "
        f"only slows rounds down; a real regression slows every round); a case regresses when the current "
        f"value exceeds the baseline's by more than its threshold AND a one-sided Mann-Whitney U test on the "
        f"raw samples of those two rounds gives p < {ALPHA:g}; an improvement is the mirror image; the "
        f"{CONFIDENCE:.0%} interval is a bootstrap of the ratio of their medians; a case that passed "
        f"numerically in the baseline and now mismatches or errors fails whatever its speed"
    )


def compare(
    base: Side,
    cur: Side,
    thresholds: Thresholds,
    mode: str = "auto",
    interval: bool = True,
    confirm: dict[str, str] | None = None,
) -> Comparison:
    """The gate. `interval=False` skips the bootstrap interval (reported only; the verdicts do not use it) —
    the gate study compares thousands of pairs. `confirm` (case id → verdict of an earlier comparison of the
    same baseline with an independent set of rounds, `load_confirm`): a regression counts only when that one
    found it too; otherwise it is "unconfirmed" (listed, not failed)."""
    mode, why = choose_mode(base, cur, mode)
    results: list[CaseResult] = []
    for cid in list(dict.fromkeys(base.case_ids() + cur.case_ids())):
        bs, brec = _worst_status(base, cid)
        cs, crec = _worst_status(cur, cid)
        res = CaseResult(cid, "no change", baseline_status=bs, current_status=cs)
        results.append(res)
        if bs is None:
            res.verdict, res.note = "new", "not in the baseline"
            continue
        if cs is None:
            res.verdict, res.note = "not compared", "absent from the current run"
            continue
        if bs == "ok" and cs in ("mismatch", "error"):
            res.verdict = "numerics"
            res.note = f"{cs} now (baseline ok): {crec.reason}"[:300]
            continue
        if bs in ("mismatch", "error") and cs in ("mismatch", "error"):
            res.verdict, res.note = "still mismatching", f"{cs} in both: {crec.reason}"[:300]
            continue
        if bs in ("mismatch", "error") and cs == "ok":
            res.verdict, res.note = "fixed", f"baseline {bs}, now ok"
        if "skipped" in (bs, cs):
            res.verdict = "not compared"
            res.note = (
                f"{'baseline' if bs == 'skipped' else 'current'} skipped: "
                + f"{(brec if bs == 'skipped' else crec).reason}"[:300]
            )
            continue
        brounds = _measured_rounds(base, cid, mode)
        crounds = _measured_rounds(cur, cid, mode)
        if not brounds or not crounds:
            res.verdict = "not compared"
            res.note = {"absolute": "no latency samples", "counts": "no counts"}.get(
                mode, "no reference-kernel samples (a run older than the interleaved reference)"
            ) + f" in the {'baseline' if not brounds else 'current'} run"
            continue
        thr = thresholds.for_case(cid, mode)
        st = case_statistics(brounds, crounds, interval=interval, mode=mode)
        res.threshold_pct, res.stats = thr, st
        if res.verdict == "fixed":
            continue
        alpha = ALPHA_COUNTS if mode == "counts" else ALPHA
        if st["ratio"] > 1 + thr / 100 and st["p_slower"] < alpha:
            res.verdict = "regression"
            if confirm is not None and confirm.get(cid) != "regression":
                res.verdict = "unconfirmed"
                res.note = "slower beyond its threshold in these rounds but not in the first set: not confirmed"
        elif st["ratio"] < 1 / (1 + thr / 100) and st["p_faster"] < alpha:
            res.verdict = "improvement"
    t = thresholds.for_mode(mode)
    own = {"ratio": thresholds.ratio, "counts": thresholds.counts}.get(mode)
    note = (
        f"{t.default_pct:g}% by default"
        + (f", per case for {len(t.rules)} glob(s)" if t.rules else "")
        + (
            f" ({mode + '-mode values ' if own is not None else ''}from {thresholds.source})"
            if thresholds.source and (own is not None or mode == "absolute")
            else (
                f" (counts mode's default; {thresholds.source} has no 'counts' section)"
                if mode == "counts" and thresholds.source
                else ""
            )
        )
    )
    return Comparison(base, cur, mode, why, results, _context(base, cur), note)


# ----------------------------------------------------------------------------------------------- summary


def _fmt_value(v: float, mode: str) -> str:
    if mode == "ratio":
        return f"{v:.3g}× ref"
    if mode == "counts":
        return f"{v / 1e6:.3f} M"
    return f"{v:.3f} ms" if v < 100 else f"{v:.1f} ms"


def _side_line(name: str, side: Side) -> str:
    m = side.meta
    commit = (m.get("commit") or "?")[:10] + (" (dirty)" if m.get("dirty") else "")
    return (
        f"- **{name}**: `{side.path}` — {len(side.rounds)} round(s), suite {m.get('suite')}, commit {commit}, "
        f"{(m.get('date') or '?')[:19]}, {_describe_machine(m)}"
    )


def render_markdown(c: Comparison) -> str:
    """A summary for a pull-request comment."""
    fails = c.failed
    reg = [x for x in c.cases if x.verdict == "regression"]
    num = [x for x in c.cases if x.verdict == "numerics"]
    imp = [x for x in c.cases if x.verdict == "improvement"]
    what = "counts" if c.mode == "counts" else "wall-clock times"
    if fails:
        head = (
            f"## convtx performance gate ({what}): ❌ FAILED — {len(reg)} regression(s), {len(num)} numerical "
            f"failure(s)"
        )
    else:
        head = f"## convtx performance gate ({what}): ✅ passed — no regression"
    out = [head, ""]
    out.append(
        f"{len([x for x in c.cases if x.stats])} cases compared; {len(imp)} improvement(s), "
        f"{len([x for x in c.cases if x.verdict == 'no change'])} within noise or threshold."
    )
    out += [
        "",
        _side_line("baseline", c.baseline),
        _side_line("current", c.current),
        "",
        f"**Mode: {c.mode}** — {c.mode_why}.",
        "",
        f"Rule: {rule_text(c.mode)}.",
        "",
    ]
    if c.thresholds_note:
        out += [f"Thresholds: {c.thresholds_note}.", ""]
    for line in c.context:
        out.append(f"> ⚠ {line}")
    if c.context:
        out.append("")
    compared, other = comparison_frames(c)
    if len(compared):
        out += table_lines(Table.from_frame(compared, COMPARED_COLUMNS)) + [""]
    if len(other):
        out += table_lines(Table.from_frame(other, OTHER_COLUMNS)) + [""]
    return "\n".join(out)


_ORDER = {"regression": 0, "numerics": 1, "unconfirmed": 2, "improvement": 3, "fixed": 4, "no change": 5}
_MARKS = {
    "regression": "❌ regression",
    "improvement": "🚀 improvement",
    "fixed": "✅ fixed",
    "unconfirmed": "⚠ slower once, not confirmed",
}
COMPARED_COLUMNS = [
    Column("case"),
    Column("baseline", numeric=True),
    Column("current", numeric=True),
    Column("ratio", numeric=True),
    Column("95% interval"),
    Column("p (slower)", numeric=True),
    Column("rounds", numeric=True),
    Column("threshold", numeric=True),
    Column("verdict"),
]
OTHER_COLUMNS = [Column(n) for n in ("case", "baseline", "current", "verdict", "note")]


def comparison_frames(c: Comparison):
    """The comparison as two pandas DataFrames, as the summary shows them: the cases compared (worst verdict
    first, then the largest ratio), and the cases that could not be (a status only on one side, numerics)."""
    import pandas as pd

    compared = pd.DataFrame(
        [
            {
                "case": code(x.case_id),
                "baseline": _fmt_value(x.stats["baseline"], c.mode),
                "current": _fmt_value(x.stats["current"], c.mode),
                "ratio": f"{x.stats['ratio']:.3f}",
                "interval": f"{x.stats['ci'][0]:.3f}–{x.stats['ci'][1]:.3f}",
                "p": _fmt_p(x.stats["p_slower"]),
                "rounds": f"{len(x.stats['baseline_rounds'])}/{len(x.stats['current_rounds'])}",
                "threshold": f"{x.threshold_pct:g}%",
                "verdict": _MARKS.get(x.verdict, "no change"),
                "_order": _ORDER.get(x.verdict, 9),
                "_ratio": x.stats["ratio"],
            }
            for x in c.cases
            if x.stats
        ],
        columns=[
            "case",
            "baseline",
            "current",
            "ratio",
            "interval",
            "p",
            "rounds",
            "threshold",
            "verdict",
            "_order",
            "_ratio",
        ],
    )
    compared = compared.sort_values(["_order", "_ratio"], ascending=[True, False], kind="stable")
    other = pd.DataFrame(
        [
            {
                "case": code(x.case_id),
                "baseline": x.baseline_status or "—",
                "current": x.current_status or "—",
                "verdict": "❌ numerics" if x.verdict == "numerics" else x.verdict,
                "note": x.note,
            }
            for x in c.cases
            if not x.stats
        ],
        columns=["case", "baseline", "current", "verdict", "note"],
    )
    return compared.drop(columns=["_order", "_ratio"]), other


def _fmt_p(p: float) -> str:
    return "<1e-4" if p < 1e-4 else f"{p:.2g}"


def gate(
    baseline: str | Path,
    current: str | Path,
    mode: str = "auto",
    threshold: float | None = None,
    per_case: str | Path | None = None,
    confirm: str | Path | None = None,
) -> Comparison:
    """`convtx compare`: CURRENT against BASELINE (a run, a directory of rounds, or of per-machine baselines:
    `pick_baseline`) under the per-case thresholds of `per_case` (default: the chosen baseline's own
    thresholds.json); `threshold` (percent) replaces the default of every mode while the file's globs still
    apply. With `confirm` (an earlier comparison's --json) a regression counts only if that one found it too."""
    from dataclasses import replace

    cur = load_side(current)
    base, picked = pick_baseline(baseline, cur)
    if per_case is None and (base.path / "thresholds.json").is_file():
        per_case = base.path / "thresholds.json"  # a baseline's own thresholds travel with it
    thresholds = load_thresholds(per_case, DEFAULT_THRESHOLD_PCT)
    if threshold is not None:  # the command line's default beats the file's; its globs still apply
        thresholds = replace(thresholds, default_pct=threshold)
        if thresholds.ratio is not None:
            thresholds = replace(thresholds, ratio=replace(thresholds.ratio, default_pct=threshold))
        thresholds = replace(
            thresholds,
            counts=replace(thresholds.counts, default_pct=threshold)
            if thresholds.counts is not None
            else Thresholds(threshold, ()),
        )
    comp = compare(base, cur, thresholds, mode, confirm=load_confirm(confirm) if confirm else None)
    if confirm:
        comp.context.append(
            f"confirmation run: a regression counts only if {confirm} (the first set of rounds) found it too"
        )
    if picked:
        comp.context.insert(0, picked)
    return comp


def main(argv=None) -> int:
    """`python -m harness.perfgate.compare slug RUN_DIR`: the per-machine baseline directory name of a run's machine."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "slug":
        print("usage: python -m harness.perfgate.compare slug RUN_DIR", file=sys.stderr)
        return 2
    print(machine_slug(load_side(args[1]).meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
