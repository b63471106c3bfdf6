"""How good is the performance gate? False alarms (A/A) and power (injected slowdowns), measured.

    python -m harness.perfgate.study collect OUT [--cycles 10] [--rounds 5]     (make perf-study: ~65 min)
    python -m harness.perfgate.study analyse OUT [--threshold PCT] [--per-case FILE] [--json FILE]

`collect` runs the quick suite as `make perf-check` does (R rounds per set), in cycles of five sets — two
A/A sets of the same commit and one set each with a 10%, 15% and 25% slowdown injected into every case
(`bench --inject-slowdown`, a calibrated busy-wait inside each timed call) — so that slow and unslowed sets
are interleaved in time and drift of the machine hits both alike.

`analyse` compares every pair of A/A sets (the earlier as baseline; a comparison failing is a false alarm)
and every slowed set against every A/A set (a case flagged as a regression is a detection), in both modes,
and also single rounds against single rounds (what a gate without rounds would see).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from harness.core import safefs
from harness.perfgate.compare import (
    DEFAULT_THRESHOLD_PCT,
    Side,
    Thresholds,
    compare,
    counter_of,
    load_side,
    load_thresholds,
)

KINDS = ("aa-a", "aa-b", "slow10", "slow15", "slow25")


def collect(
    out: Path,
    cycles: int,
    rounds: int,
    suite: str = "quick",
    kinds: tuple[str, ...] = KINDS,
    first: int = 1,
    threads: int | None = None,
    counts: bool = False,
) -> None:
    """`counts`: the sets are `bench --counts` runs (callgrind; the injected slowdown is then a fixed loop
    adding that share of each case's estimated cycles), as `make perf-check`'s count gate runs them."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    for k in range(first, first + cycles):
        for kind in kinds:
            if kind.startswith("aa"):
                d, extra = out / "aa" / f"set-{k:02d}{kind[-1]}", []
            else:
                d, extra = out / kind / f"set-{k:02d}", ["--inject-slowdown", kind[4:]]
            if (d / f"round-{rounds:02d}" / "run.json").exists():
                continue
            d.parent.mkdir(parents=True, exist_ok=True)
            cmd = [
                sys.executable,
                "-m",
                "harness",
                "bench",
                "--suite",
                suite,
                "--no-calibrate",
                "--no-report",
                "--rounds",
                str(rounds),
                "--out",
                str(d),
                *extra,
                *(["--threads", str(threads)] if threads else []),
                *(["--counts"] if counts else []),
            ]
            with open(d.with_suffix(".log"), "w") as log:
                rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
            print(f"[{time.monotonic() - t0:6.0f} s] {d} exit {rc}", file=sys.stderr)


def _single_rounds(side: Side) -> list[Side]:
    return [Side(r.path, [r]) for r in side.rounds]


def _rate(hits: int, n: int) -> str:
    return f"{hits}/{n} = {100 * hits / n:.1f}%" if n else "—"


def _tally(pairs, thr: Thresholds, mode: str) -> dict:
    """Compare each (baseline, current) pair: how many comparisons failed, and per case how many were
    flagged as regressions and the ratios seen."""
    n = fails = 0
    cases: dict[str, dict] = {}
    for b, c in pairs:
        comp = compare(b, c, thr, mode, interval=False)
        n += 1
        fails += bool(comp.failed)
        for x in comp.cases:
            if x.stats:
                d = cases.setdefault(x.case_id, {"n": 0, "flagged": 0, "ratios": []})
                d["n"] += 1
                d["flagged"] += x.verdict == "regression"
                d["ratios"].append(x.stats["ratio"])
    return {
        "comparisons": n,
        "failed": fails,
        "cases": {
            c: {
                "n": d["n"],
                "flagged": d["flagged"],
                "median_ratio": float(np.median(d["ratios"])),
                "max_abs_change": float(np.max(np.abs(np.array(d["ratios"]) - 1))),
            }
            for c, d in cases.items()
        },
    }


def _cycle(d: Path) -> int:
    return int(d.name[4:6])  # set-07a / set-07 -> 7


def _sets(out: Path, cycles: range | None) -> tuple[list[Side], dict[int, list[Side]]]:
    keep = lambda d: d.is_dir() and (cycles is None or _cycle(d) in cycles)
    aa = [load_side(d) for d in sorted((out / "aa").glob("set-*")) if keep(d)]
    slow = {
        int(k.name[4:]): [load_side(d) for d in sorted(k.glob("set-*")) if keep(d)]
        for k in sorted(out.glob("slow*"))
        if k.is_dir()
    }
    return aa, slow


def _merge(sides: list[Side], group: int) -> list[Side]:
    """Consecutive sets joined into sides of `group` × R rounds: what a gate running more rounds would see."""
    return [
        Side(g[0].path, [r for x in g for r in x.rounds])
        for g in (sides[i : i + group] for i in range(0, len(sides) - group + 1, group))
    ]


def analyse(out: Path, thr: Thresholds, cycles: range | None = None, group: int = 1) -> dict:
    aa, slow = _sets(out, cycles)
    aa, slow = _merge(aa, group), {p: _merge(v, group) for p, v in slow.items()}
    res: dict = {
        "threshold_pct": thr.default_pct,
        "per_case": [list(r) for r in thr.rules],
        "aa_sets": len(aa),
        "rounds": len(aa[0].rounds) if aa else 0,
        "cycles": [cycles.start, cycles.stop - 1] if cycles else None,
        "false_alarms": {},
        "power": {},
    }
    counting = bool(aa) and counter_of(aa[0].meta) is not None
    res["metric"] = "counts" if counting else "time"
    if counting:
        t = thr.for_mode("counts")
        res["threshold_pct"], res["per_case"] = t.default_pct, [list(r) for r in t.rules]
    for mode in ("counts",) if counting else ("absolute", "ratio"):
        res["false_alarms"][f"{mode}/rounds"] = _tally(itertools.combinations(aa, 2), thr, mode)
        if res["rounds"] > 1:
            firsts = [_single_rounds(a)[0] for a in aa]  # what a gate without rounds would see
            res["false_alarms"][f"{mode}/single"] = _tally(itertools.combinations(firsts, 2), thr, mode)
        for pct, sets in slow.items():
            res["power"].setdefault(mode, {})[pct] = _tally(itertools.product(aa, sets), thr, mode)
        if not counting:  # counts are not re-measured on failure (make perf-check): nothing to confirm
            res.setdefault("confirmed", {})[mode] = confirmed(aa, slow, thr, mode)
    return res


def _regressed(b: Side, c: Side, thr: Thresholds, mode: str) -> frozenset[str]:
    comp = compare(b, c, thr, mode, interval=False)
    return frozenset(x.case_id for x in comp.cases if x.fails)


def confirmed(aa: list[Side], slow: dict[int, list[Side]], thr: Thresholds, mode: str) -> dict:
    """The gate as `make perf-check` runs it: a failing comparison is repeated with an independent set of
    rounds, and fails only if a case fails in both. False alarms: every A/A set as baseline, every unordered
    pair of two other A/A sets as (first, confirming) current. Power: every A/A baseline with every pair of
    two slowed sets of one level; a case is detected when both flag it."""
    reg = {(i, j): _regressed(aa[i], aa[j], thr, mode) for i in range(len(aa)) for j in range(len(aa)) if i != j}
    n = fails = 0
    for i in range(len(aa)):
        others = [j for j in range(len(aa)) if j != i]
        for j, k in itertools.combinations(others, 2):
            n += 1
            fails += bool(reg[(i, j)] & reg[(i, k)])
    power = {}
    for pct, sets in slow.items():
        sreg = {(i, j): _regressed(aa[i], sets[j], thr, mode) for i in range(len(aa)) for j in range(len(sets))}
        cases: dict[str, list[int]] = {}
        for i in range(len(aa)):
            for j, k in itertools.combinations(range(len(sets)), 2):
                for c in aa[i].case_ids():
                    d = cases.setdefault(c, [0, 0])
                    d[0] += c in sreg[(i, j)] and c in sreg[(i, k)]
                    d[1] += 1
        power[pct] = {c: {"flagged": v[0], "n": v[1]} for c, v in cases.items()}
    return {"false_alarms": {"comparisons": n, "failed": fails}, "power": power}


def suggest(out: Path, cycles: range | None, group: int, floor: float, margin: float) -> dict:
    """Per-case thresholds from A/A data: the largest change any A/A pair showed (absolute mode), times
    `margin`, rounded up to a multiple of 5%, never below `floor`. Derive them from some cycles and measure
    the false alarms on the others (`analyse --cycles`), or the rate is flattered."""
    aa, _ = _sets(out, cycles)
    aa = _merge(aa, group)
    res: dict = {}
    for mode in ("absolute", "ratio"):
        t = _tally(itertools.combinations(aa, 2), Thresholds(floor, ()), mode)
        pcts = {
            c: float(max(floor, 5 * np.ceil(100 * v["max_abs_change"] * margin / 5)))
            for c, v in sorted(t["cases"].items())
        }
        default = float(max(pcts.values())) if mode == "ratio" and pcts else floor
        sec = {
            "default_pct": default,
            "cases": {c: p for c, p in pcts.items() if p != default},
            "_max_aa_change_pct": {c: round(100 * v["max_abs_change"], 1) for c, v in sorted(t["cases"].items())},
        }
        if mode == "absolute":
            res.update(sec)
        else:
            res["ratio"] = sec
    span = f"{cycles.start}-{cycles.stop - 1}" if cycles else "all"
    res["_derived_from"] = (
        f"{len(aa)} A/A sides of {len(aa[0].rounds) if aa else 0} rounds (cycles {span}): per "
        f"case the largest change any A/A pair showed × {margin:g}, rounded up to 5%, at least "
        f"{floor:g}%; ratio mode's default is its noisiest case's (a case new to the suite "
        f"gets it) — python -m harness.perfgate.study suggest"
    )
    return res


def render(res: dict) -> str:
    rules = "".join(f", {g} {p:g}%" for g, p in res["per_case"])
    cyc = f", cycles {res['cycles'][0]}-{res['cycles'][1]}" if res.get("cycles") else ""
    out = [
        f"Thresholds: default {res['threshold_pct']:g}%{rules}; {res['aa_sets']} A/A sides of {res['rounds']} "
        f"rounds{cyc}.",
        "",
    ]
    out += [
        "False alarms (A/A, every pair of sets, earlier set as baseline):",
        "",
        "| mode | unit | comparisons | gate failed | worst case (alarms) |",
        "|---|---|---:|---:|---|",
    ]
    for key, v in res["false_alarms"].items():
        mode, gran = key.split("/")
        unit = f"{res['rounds']} rounds" if gran == "rounds" else "1 round"
        cases = v["cases"]
        worst = max(cases, key=lambda c: (cases[c]["flagged"], cases[c]["max_abs_change"])) if cases else "—"
        w = cases.get(worst, {})
        out.append(
            f"| {mode} | {unit} | {v['comparisons']} | {_rate(v['failed'], v['comparisons'])} | "
            f"`{worst}` ({w.get('flagged', 0)}, max change {100 * w.get('max_abs_change', 0):.1f}%) |"
        )
    out.append("")
    if res.get("confirmed"):
        out += [
            "With the confirmation run (`make perf-check`: a failure must repeat in an independent set of "
            "rounds, the same case failing in both):",
            "",
            "| mode | false alarms (baseline × pair of other A/A sets) | "
            + " | ".join(f"power at {p}% (all cases)" for p in next(iter(res["confirmed"].values()))["power"])
            + " |",
            "|---|---:|" + "---:|" * len(next(iter(res["confirmed"].values()))["power"]),
        ]
        for mode, v in res["confirmed"].items():
            fa = v["false_alarms"]
            cells = []
            for cases in v["power"].values():
                cells.append(_rate(sum(c["flagged"] for c in cases.values()), sum(c["n"] for c in cases.values())))
            out.append(f"| {mode} | {_rate(fa['failed'], fa['comparisons'])} | " + " | ".join(cells) + " |")
        out.append("")
        for mode, v in res["confirmed"].items():
            if not v["power"]:
                continue
            levels = v["power"]
            cases = sorted(next(iter(levels.values())))
            out += [
                f"Power with confirmation, {mode} mode, per case:",
                "",
                "| case | " + " | ".join(f"{p}%" for p in levels) + " |",
                "|---|" + "---:|" * len(levels),
            ]
            for c in cases:
                out.append(
                    f"| `{c}` | " + " | ".join(_rate(levels[p][c]["flagged"], levels[p][c]["n"]) for p in levels) + " |"
                )
            out.append("")
    for mode, levels in res["power"].items():
        if not levels:
            continue
        cases = sorted(next(iter(levels.values()))["cases"])
        out += [
            f"Power, {mode} mode (every slowed set against every A/A set; detection rate per case, and in "
            f"brackets the median measured ratio, i.e. the slowdown the injection really caused):",
            "",
            "| case | " + " | ".join(f"{p}%" for p in levels) + " |",
            "|---|" + "---:|" * len(levels),
        ]
        for c in cases:
            out.append(
                f"| `{c}` | "
                + " | ".join(
                    _rate(levels[p]["cases"][c]["flagged"], levels[p]["cases"][c]["n"])
                    + f" (×{levels[p]['cases'][c]['median_ratio']:.2f})"
                    for p in levels
                )
                + " |"
            )
        tot = {
            p: (
                sum(v["flagged"] for v in levels[p]["cases"].values()),
                sum(v["n"] for v in levels[p]["cases"].values()),
            )
            for p in levels
        }
        out.append("| **all cases** | " + " | ".join(_rate(*tot[p]) for p in levels) + " |")
        out.append("")
    return "\n".join(out)


def validity(counts_dir: Path, time_dir: Path) -> dict:
    """Do counts track time? For every lowering of a (model, backend, batch), its cost relative to the native
    case of the same model and backend, once in estimated cycles and instructions (a `bench --counts` run) and
    once in wall-clock time (a timed run, fastest round's median): if counts are a sound proxy, the ratios
    agree in direction and roughly in size."""
    from scipy.stats import spearmanr

    cs, ts = load_side(counts_dir), load_side(time_dir)

    def count_of(cid: str, key: str) -> float | None:
        """The median counted metric of the case's lowest round, or ("ir") its first round's median Ir."""
        vals = [
            getattr(r.records[cid].counts, key)
            for r in cs.rounds
            if cid in r.records and r.records[cid].status == "ok" and r.records[cid].counts
        ]
        if not vals:
            return None
        return float(np.median(vals[0])) if key == "ir" else float(min(vals))

    def time_of(cid: str) -> float | None:
        vals = [
            r.records[cid].latency_ms.median
            for r in ts.rounds
            if cid in r.records and r.records[cid].status == "ok" and r.records[cid].latency_ms
        ]
        return float(min(vals)) if vals else None

    rows = []
    for cid in cs.case_ids():
        model, lowering, backend, batch = cid.split("/")
        if lowering == "native":
            continue
        native = "/".join((model, "native", backend, batch))
        c, cn = count_of(cid, "median"), count_of(native, "median")
        i, i_n = count_of(cid, "ir"), count_of(native, "ir")
        t, tn = time_of(cid), time_of(native)
        if None in (c, cn, t, tn):
            continue
        rows.append(
            {"case": cid, "est_ratio": c / cn, "ir_ratio": i / i_n if i and i_n else None, "time_ratio": t / tn}
        )
    est = np.array([r["est_ratio"] for r in rows])
    tim = np.array([r["time_ratio"] for r in rows])
    big = np.abs(np.log(tim)) > np.log(1.05)
    res = {"counts": str(counts_dir), "time": str(time_dir), "rows": rows, "n": len(rows)}
    if len(rows) >= 3:
        res["spearman"] = float(spearmanr(est, tim).statistic)
        res["median_abs_log2_error"] = float(np.median(np.abs(np.log2(est / tim))))
        res["same_direction"] = [int(np.sum(np.sign(np.log(est[big])) == np.sign(np.log(tim[big])))), int(big.sum())]
    return res


def render_validity(res: dict) -> str:
    out = [
        f"Counts vs time, each lowering relative to the native case of the same model and backend "
        f"(counts: {res['counts']}; time: {res['time']}):",
        "",
        "| case | est. cycles ratio | instructions ratio | time ratio | est. / time |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in sorted(res["rows"], key=lambda r: r["case"]):
        ir = f"{r['ir_ratio']:.2f}" if r["ir_ratio"] else "—"
        out.append(
            f"| `{r['case']}` | {r['est_ratio']:.2f} | {ir} | {r['time_ratio']:.2f} | "
            f"{r['est_ratio'] / r['time_ratio']:.2f} |"
        )
    if "spearman" in res:
        sd = res["same_direction"]
        out += [
            "",
            f"{res['n']} lowering cases: Spearman rank correlation of est. cycles ratio with time ratio "
            f"{res['spearman']:.2f}; median |log2(est. ratio / time ratio)| {res['median_abs_log2_error']:.2f}; "
            f"where time moved by more than 5%, counts moved the same way in {sd[0]}/{sd[1]}.",
        ]
    return "\n".join(out)


def swapped(run_dir: Path, baseline: Path, thr_file: Path | None = None) -> list[dict]:
    """Real slowdowns for the gate's power: each lowering's records of a run (counted or timed) renamed as the
    native case of the same model and backend — a slower (or faster) but equivalent lowering running under
    the native one's name — and compared with the baseline as `convtx compare` would."""
    from harness.perfgate.compare import Round, load_thresholds, pick_baseline

    side = load_side(run_dir)
    out = []
    lowerings = sorted({c.split("/")[1] for c in side.case_ids()} - {"native"})
    for low in lowerings:
        rounds = []
        for r in side.rounds:
            recs = {}
            for cid, rec in r.records.items():
                m, lw, b, bt = cid.split("/")
                if lw == low:
                    nid = "/".join((m, "native", b, bt))
                    recs[nid] = replace(rec, case_id=nid, lowering="native")
            rounds.append(Round(r.path, r.meta, recs))
        cur = Side(side.path / f"as-native-{low}", rounds)
        base, _ = pick_baseline(baseline, cur)
        f = thr_file or (base.path / "thresholds.json" if (base.path / "thresholds.json").is_file() else None)
        thr = load_thresholds(f, DEFAULT_THRESHOLD_PCT)
        comp = compare(base, cur, thr)
        for x in comp.cases:
            if x.stats and x.current_status:
                out.append(
                    {
                        "lowering": low,
                        "case": x.case_id,
                        "ratio": x.stats["ratio"],
                        "verdict": x.verdict,
                        "threshold_pct": x.threshold_pct,
                        "mode": comp.mode,
                    }
                )
    return out


def _cycles(text: str | None) -> range | None:
    if not text:
        return None
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def pytest_benchmark_collect(out: Path, rounds: int, repo: Path) -> list[Path]:
    """`rounds` runs of the pytest-benchmark suite (benchmarks/, the gate suite's cases), each a fresh pytest
    process writing its JSON (out/round-NN.json), resumable (a round already written is kept)."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(1, rounds + 1):
        f = out / f"round-{i:02d}.json"
        if not f.exists():
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                "benchmarks",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--benchmark-json={f}",
            ]
            p = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=False)
            if p.returncode != 0:
                raise SystemExit(
                    f"round {i}: pytest failed (exit {p.returncode}):\n{p.stdout[-2000:]}{p.stderr[-2000:]}"
                )
        files.append(f)
    return files


def pytest_benchmark_aa(files: list[Path], check: str = "median:10%") -> dict:
    """A/A false alarms of pytest-benchmark's `--benchmark-compare-fail=CHECK` (its own check objects,
    pytest_benchmark.utils.parse_compare_fail): every ordered pair of rounds of the same code (the earlier as
    the saved run) is a comparison; it is a false alarm when any case fails the check, as CI would see it."""
    from pytest_benchmark.utils import parse_compare_fail

    chk = parse_compare_fail(check)
    runs = [{b["name"]: b["stats"] for b in json.loads(f.read_text())["benchmarks"]} for f in files]
    comparisons = alarms = case_checks = case_alarms = 0
    worst: dict[str, float] = {}
    for a, b in itertools.combinations(range(len(runs)), 2):
        comparisons += 1
        failed = False
        for name, cur in runs[b].items():
            if name not in runs[a]:
                continue
            case_checks += 1
            pct = chk.compute(cur, runs[a][name])
            worst[name] = max(worst.get(name, -1e9), pct)
            if chk.fails(cur, runs[a][name]):
                case_alarms += 1
                failed = True
        alarms += failed
    return {
        "check": check,
        "rounds": len(runs),
        "comparisons": comparisons,
        "false_alarms": alarms,
        "case_checks": case_checks,
        "case_false_alarms": case_alarms,
        "worst_increase_pct": {k: round(v, 1) for k, v in sorted(worst.items())},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.perfgate.study", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("out", type=Path)
    c.add_argument("--cycles", type=int, default=10)
    c.add_argument("--rounds", type=int, default=5)
    c.add_argument("--kinds", default=",".join(KINDS), help=f"sets per cycle, in order (default {','.join(KINDS)})")
    c.add_argument("--first", type=int, default=1, help="number of the first cycle (to add cycles later)")
    c.add_argument("--threads", type=int, help="engine threads (as `make perf-check` runs them: 1)")
    c.add_argument("--suite", default="quick", help="the suite of each set (perf-check: quick; with --counts: gate)")
    c.add_argument(
        "--counts",
        action="store_true",
        help="count with callgrind (bench --counts) instead of timing: the count gate's study",
    )
    for name in ("analyse", "suggest"):
        a = sub.add_parser(name)
        a.add_argument("out", type=Path)
        a.add_argument("--cycles", help="only these cycles, e.g. 6-10 (default: all)")
        a.add_argument(
            "--group",
            type=int,
            default=1,
            help="join G consecutive sets into one side (G × R rounds: a gate with more rounds)",
        )
        a.add_argument("--json", type=Path)
        if name == "analyse":
            a.add_argument(
                "--threshold",
                type=float,
                default=None,
                help=f"default threshold, percent (times: {DEFAULT_THRESHOLD_PCT:g}; counts: 5)",
            )
            a.add_argument("--per-case", type=Path, help="thresholds file, as `convtx compare --per-case`")
        else:
            a.add_argument("--floor", type=float, default=DEFAULT_THRESHOLD_PCT)
            a.add_argument("--margin", type=float, default=1.2)
    v = sub.add_parser("validity", help="do counts track time? lowering/native ratios in counts and in time")
    v.add_argument("--counts", type=Path, required=True, help="a bench --counts run")
    v.add_argument("--time", type=Path, required=True, help="a timed run (or rounds) of the same plan")
    v.add_argument("--json", type=Path)
    w = sub.add_parser(
        "swap",
        help="each lowering's cases run under the native case's name, compared with the "
        "baseline: real slowdowns (and speed-ups) the gate should flag",
    )
    w.add_argument("run", type=Path, help="a run (counted or timed) with several lowerings")
    w.add_argument("--baseline", type=Path, default=Path("reports/baseline"))
    w.add_argument("--json", type=Path)
    pb = sub.add_parser(
        "pytest-benchmark-aa",
        help="A/A false alarms of pytest-benchmark's --benchmark-compare-fail over rounds of benchmarks/",
    )
    pb.add_argument("out", type=Path)
    pb.add_argument("--rounds", type=int, default=10)
    pb.add_argument("--check", default="median:10%")
    pb.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "pytest-benchmark-aa":
        res = pytest_benchmark_aa(pytest_benchmark_collect(args.out, args.rounds, Path.cwd()), args.check)
        if args.json:
            safefs.write_atomic(args.json, json.dumps(res, indent=1) + "\n")
        print(
            f"pytest-benchmark --benchmark-compare-fail={res['check']}, {res['rounds']} rounds of the same code: "
            f"{res['false_alarms']}/{res['comparisons']} comparisons raised a false alarm "
            f"({res['case_false_alarms']}/{res['case_checks']} case checks)"
        )
        for k, v in res["worst_increase_pct"].items():
            print(f"  {k}: worst median increase {v:+.1f}%")
        return 0
    if args.cmd == "swap":
        rows = swapped(args.run, args.baseline)
        if args.json:
            safefs.write_atomic(args.json, json.dumps(rows, indent=1) + "\n")
        print(
            "| lowering run as native | case | ratio to the baseline | threshold | verdict |\n|---|---|---:|---:|---|"
        )
        for r in rows:
            print(f"| {r['lowering']} | `{r['case']}` | {r['ratio']:.3f} | {r['threshold_pct']:g}% | {r['verdict']} |")
        return 0
    if args.cmd == "validity":
        res = validity(args.counts, args.time)
        if args.json:
            safefs.write_atomic(args.json, json.dumps(res, indent=1) + "\n")
        print(render_validity(res))
        return 0
    if args.cmd == "collect":
        kinds = tuple(k for k in args.kinds.split(",") if k)
        import re

        bad = [k for k in kinds if not re.fullmatch(r"aa-[ab]|slow[1-9][0-9]{0,2}", k)]
        if bad:
            p.error(f"--kinds: unknown {bad}; choose from aa-a, aa-b and slowPCT (e.g. {','.join(KINDS)})")
        collect(
            args.out,
            args.cycles,
            args.rounds,
            suite=args.suite,
            kinds=kinds,
            first=args.first,
            threads=args.threads,
            counts=args.counts,
        )
        return 0
    if args.cmd == "suggest":
        res = suggest(args.out, _cycles(args.cycles), args.group, args.floor, args.margin)
        text = json.dumps(res, indent=1) + "\n"
        if args.json:
            safefs.write_atomic(args.json, text)
        print(text, end="")
        return 0
    thr = load_thresholds(args.per_case, args.threshold or DEFAULT_THRESHOLD_PCT)
    if args.threshold is not None:
        thr = replace(thr, default_pct=args.threshold, counts=Thresholds(args.threshold, ()))
    res = analyse(args.out, thr, _cycles(args.cycles), args.group)
    if args.json:
        safefs.write_atomic(args.json, json.dumps(res, indent=1) + "\n")
    print(render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
