"""Which pairs the report shows, and (below) the clips and spectrograms a person listens to and looks at."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from .load import STATUSES, StageOutputs, _jsonable

log = logging.getLogger(__name__)

_EXAMPLE_COLUMNS = ["pair_id", "artist", "mix_title", "version_title", "version_kind", "genre", "duration_delta_s",
                    "title_score", "n_near_best", "ber", "offset_s", "overlap_s", "reason", "mix_audio_path",
                    "version_audio_path"]



def examples(stages: dict[str, StageOutputs], per_status: int, seed: int) -> dict[str, list[dict]]:
    """Example pairs per verify status (or "candidate" when verify has not run), a seeded random draw."""
    ver = stages["verify"].tables.get("verified")
    out: dict[str, list[dict]] = {}
    if ver is not None and "status" in ver:
        groups = [(s, ver[ver["status"].astype(str) == s]) for s in (*STATUSES, *sorted(set(ver["status"].astype(str))
                                                                                         - set(STATUSES)))]
    elif stages["discover"].tables.get("candidates") is not None:
        groups = [("candidate", stages["discover"].tables["candidates"])]
    else:
        return out
    for name, df in groups:
        if not len(df) or per_status == 0:
            out[name] = []
            continue
        pick = df.sample(n=min(per_status, len(df)), random_state=seed)
        pick = pick.sort_values("pair_id") if "pair_id" in pick else pick
        cols = [c for c in _EXAMPLE_COLUMNS if c in pick]
        rows = []
        for rec in pick[cols].to_dict("records"):
            rows.append({k: _jsonable(v) for k, v in rec.items()})
        out[name] = rows
    return out

