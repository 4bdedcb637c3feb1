"""Calibrate (and report) the verify decision on realistic generated cases (pairminer.synth_cases).

Writes `--per-case` pairs of every case (0 dB and quiet voices, codecs, masters, fades, tails,
offsets, trimmed acapellas, copies, other songs at the same tempo and key) for one seed, runs
`run_verify` on them with wide windows, and prints per case: the confusion (expected -> got) and
the distributions (min / median / max) of BER, residual share, GCC-PHAT envelope peak ratio and
overlap share. `--seed-rule` also scores the seed's BER-only rule on the same pairs.

    .venv/bin/python benchmarks/calibrate_verify.py --seed 1 --per-case 6     # the calibration seed
    .venv/bin/python benchmarks/calibrate_verify.py --seed 2 --per-case 6     # held out: report only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pairminer.storage import write_table  # noqa: E402
from pairminer.synth_cases import CASES, candidates_table, write_cases  # noqa: E402
from pairminer.verify.stage import VerifyConfig, classify, run_verify  # noqa: E402


def run(seed: int, per_case: int, duration_s: float, workdir: Path, config: VerifyConfig) -> pd.DataFrame:
    folder = workdir / f"seed{seed}_n{per_case}_d{duration_s:g}"
    import pickle

    done = folder / "cases.pkl"
    if done.exists():
        cases = pickle.loads(done.read_bytes())
    else:
        cases = write_cases(folder, seed=seed, per_case=per_case, duration_s=duration_s)
        done.write_bytes(pickle.dumps(cases))
    cands = candidates_table(cases)
    write_table(folder / "candidates.parquet", cands, "candidates")
    res = run_verify(folder / "candidates.parquet", folder / "out", config, progress=False)
    out = pd.read_parquet(res.verified_path)
    out["case"] = [c.name for c in cases]
    out["expected"] = [c.expected for c in cases]
    out["vocal_db"] = [c.vocal_db for c in cases]
    out["true_offset_s"] = [c.offset_s for c in cases]
    out["contrast"] = out["second_ber"] - out["ber"]
    return out


def report(out: pd.DataFrame, config: VerifyConfig, seed_rule: bool) -> dict:
    rows = []
    wrong_total = 0
    for name in CASES:
        sub = out[out["case"] == name]
        got = sub["status"].value_counts().to_dict()
        right = int((sub["status"] == sub["expected"]).sum())
        wrong_total += len(sub) - right
        line = {"case": name, "expected": CASES[name][1], "n": len(sub), "right": right, "got": got}
        for col in ("ber", "excess_share", "align_peak_ratio", "contrast"):
            v = sub[col].to_numpy(float)
            line[col] = [float(np.nanmin(v)), float(np.nanmedian(v)), float(np.nanmax(v))] if len(v) else None
        if seed_rule:
            old = [classify(b, o, VerifyConfig(max_ber=0.35))[0] for b, o in zip(sub["ber"], sub["overlap_s"])]
            line["seed_rule_right"] = int(sum(a == e for a, e in zip(old, sub["expected"])))
        rows.append(line)
    print(f"{'case':20s} {'exp':13s} {'right':>7s} {'seed':>5s}  {'BER min/med/max':20s} {'excess share':20s} "
          f"{'peak ratio':20s} contrast")
    for r in rows:
        def f(x, p=3):
            return "/".join(f"{v:.{p}f}" for v in x) if x else "-"
        print(f"{r['case']:20s} {r['expected']:13s} {r['right']:3d}/{r['n']:<3d} "
              f"{r.get('seed_rule_right', -1):5d}  {f(r['ber']):20s} {f(r['excess_share'], 4):20s} "
              f"{f(r['align_peak_ratio'], 2):20s} {f(r['contrast'])}")
    for _, w in out[out["status"] != out["expected"]].iterrows():
        print(f"  WRONG {w['case']}: {w['expected']} -> {w['status']} ({w['reason']}) BER {w['ber']:.3f} "
              f"exc {w['excess_share']:.4f} peak {w['align_peak_ratio']:.2f} voc {w['vocal_db']:.1f} dB")
    print(f"wrong: {wrong_total} of {len(out)}")
    # Wide windows: what a 1 s discover window would have let verify see, against 10 s (60 s for acapellas).
    gain = {}
    ver = out["status"] == "verified"
    hours = out["mix_duration_s"] / 3600.0
    for label, inst_w, acap_w in (("window 1 s", 1.0, 1.0), ("window 10 s, acapella 60 s", 10.0, 60.0)):
        w = np.where(out["version_kind"] == "acapella", acap_w, inst_w)
        cand = out["duration_delta_s"].abs() < w
        gain[label] = {"candidates": int(cand.sum()), "verified": int((cand & ver).sum()),
                       "verified_hours": float(hours[cand & ver].sum())}
        print(f"{label:28s}: {int(cand.sum()):3d} candidates, {int((cand & ver).sum()):3d} verified, "
              f"{float(hours[cand & ver].sum()):.2f} h")
    return {"cases": rows, "wrong": wrong_total, "n": len(out), "windows": gain}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1, help="1 = calibration seed, 2 = held-out seed")
    ap.add_argument("--per-case", type=int, default=4)
    ap.add_argument("--duration", type=float, default=60.0, help="mix length, s")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "pairminer-calibrate-verify"))
    ap.add_argument("--seed-rule", action="store_true", help="also score the seed's BER-only rule")
    ap.add_argument("--json", default=None, help="write the per-case figures here")
    args = ap.parse_args()
    config = VerifyConfig(min_overlap_s=6.0, no_cache=True)
    t = time.perf_counter()
    out = run(args.seed, args.per_case, args.duration, Path(args.workdir), config)
    print(f"seed {args.seed}: {len(out)} pairs of {args.duration:g} s in {time.perf_counter() - t:.0f} s")
    rep = report(out, config, args.seed_rule)
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))


if __name__ == "__main__":
    main()
