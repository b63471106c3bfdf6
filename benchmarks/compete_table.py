"""Issue 20's table from one bench run: per model, the best verified latency of ORT, OpenVINO, TVM with the default
schedule (tvm-llvm) and TVM with the committed database (tvm-llvm-tuned), the tuned share of the tuned
configuration, and TVM's best over min(ORT, OpenVINO) — raw, and per reference kernel (each case's median over
the fixed numpy kernel timed between its own calls, `latency_ms.ratio_to_reference`, which cancels most of a
noisy VM's slow stretches).

    python benchmarks/compete_table.py RUN_DIR [--markdown]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

BACKENDS = {"ort-cpu": "ort", "openvino-cpu": "ov", "tvm-llvm": "tvm", "tvm-llvm-tuned": "tuned"}


def frame(run: Path) -> pd.DataFrame:
    rows = []
    for line in (run / "results.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        lat = r.get("latency_ms") or {}
        if r["status"] != "ok" or r["backend"] not in BACKENDS or not lat.get("median"):
            continue
        share = (
            ((r["details"].get("default_schedule") or {}).get("tuned_share"))
            if r["backend"] == "tvm-llvm-tuned"
            else None
        )
        rows.append(
            {
                "model": f"{r['model']}@{r['size']}" if r.get("size") else r["model"],
                "engine": BACKENDS[r["backend"]],
                "lowering": r["lowering"],
                "ms": lat["median"],
                "per_ref": lat.get("ratio_to_reference"),
                "tuned_share": share,
            }
        )
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> pd.DataFrame:
    out = []
    for model, g in df.groupby("model", sort=False):
        best = {e: g[g.engine == e].sort_values("ms").head(1) for e in BACKENDS.values()}
        row = {"model": model}
        for e, b in best.items():
            row[f"{e} ms"] = f"{b.ms.iloc[0]:.3f} ({b.lowering.iloc[0]})" if len(b) else "–"
        share = best["tuned"].tuned_share.iloc[0] if len(best["tuned"]) else None
        row["tuned share"] = f"{share:.0%}" if share is not None and share == share else "–"
        tvm = pd.concat([best["tvm"], best["tuned"]]).sort_values("ms").head(1)
        rival = pd.concat([best["ort"], best["ov"]]).sort_values("ms").head(1)
        if len(tvm) and len(rival):
            row["TVM ÷ min(ORT, OV)"] = f"{tvm.ms.iloc[0] / rival.ms.iloc[0]:.2f}"
            # per reference kernel: the best of each side by its normalised median
            tn = g[g.engine.isin(["tvm", "tuned"])].per_ref.min()
            rn = g[g.engine.isin(["ort", "ov"])].per_ref.min()
            row["same, per reference kernel"] = f"{tn / rn:.2f}" if tn == tn and rn == rn else "–"
            dn = g[g.engine == "tvm"].per_ref.min()
            on = g[g.engine == "ort"].per_ref.min()
            row["default ÷ ORT (per ref.)"] = f"{dn / on:.2f}" if dn == dn and on == on else "–"
        out.append(row)
    return pd.DataFrame(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args()
    t = table(frame(a.run))
    if a.markdown:
        cols = list(t.columns)
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
        for _, row in t.iterrows():
            print("| " + " | ".join(str(row[c]) for c in cols) + " |")
    else:
        print(t.to_string(index=False))


if __name__ == "__main__":
    main()
