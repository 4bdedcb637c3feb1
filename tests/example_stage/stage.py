"""The tally stage: candidates.parquet -> tally.json (pairs per kind)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pairminer.storage import join, read_table, write_json

from .config import TallyConfig

log = logging.getLogger(__name__)


@dataclass
class TallyResult:
    path: str
    counts: dict[str, int]

    def summary(self) -> str:
        return f"tally: {sum(self.counts.values())} pair(s) in {len(self.counts)} group(s) -> {self.path}"


def run_tally(candidates: str, out_dir: str, config: TallyConfig | None = None, *, progress: bool = True) -> TallyResult:
    """Count the candidate pairs of `candidates` by `config.by`; write OUT/tally.json (schema `tally`)."""
    config = config or TallyConfig()
    df = read_table(candidates, "candidates").to_pandas()
    df = df[df["title_score"] >= config.min_score]
    counts = {str(k): int(v) for k, v in df[config.by].fillna("(none)").value_counts().sort_index().items()}
    path = join(out_dir, "tally.json")
    write_json(path, {"stage": "tally", "config": config.to_dict(), "counts": counts}, "tally")
    log.info("tally: %d groups", len(counts))
    return TallyResult(path=path, counts=counts)
