"""The rows of a pass that starts after verify: the verified pairs of verified.parquet, batch by batch."""

from __future__ import annotations

import math
from typing import Any, Iterator

import pandas as pd

from ..errors import InputError
from ..storage import is_url
from .steps import Batch

REQUIRED_COLUMNS = ("pair_id", "mix_track_id", "version_track_id", "version_kind", "artist", "status",
                    "offset_s", "mix_audio_path", "version_audio_path")
# Rows of verified.parquet read per batch (the client holds one batch, not the table).
READ_BATCH_ROWS = 20_000


def row_dict(row: pd.Series | dict) -> dict:
    """A row as plain Python values: NaN/NA -> None, numpy scalars -> Python."""
    out = {}
    for k, v in (row.items() if hasattr(row, "items") else row):
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
            v = None
        elif hasattr(v, "item"):
            v = v.item()
        out[k] = v
    return out


class VerifiedRows:
    """The verified rows of verified.parquet (status == "verified"), read in batches.

    Attributes:
        n: verified rows (read from the pair_id and status columns only, up front).
        rows_in: rows in the file.
        verified_ids: their pair_ids (an Arrow array), for dropping pairs that are no longer verified.
        base_dir: the file's folder (relative audio paths resolve against it, as verify resolved them).
    """

    def __init__(self, verified_path: str):
        import pyarrow.compute as pc

        from ..storage import open_parquet

        self.path = verified_path
        self.pf, self.handle = open_parquet(verified_path)
        missing = [c for c in REQUIRED_COLUMNS if c not in self.pf.schema_arrow.names]
        if missing:
            self.close()
            raise InputError(f"{verified_path} lacks column(s) {', '.join(missing)}; give the verified.parquet "
                             "written by `pairminer verify`")
        t = self.pf.read(columns=["pair_id", "status"])
        ids = t.filter(pc.equal(pc.cast(t["status"], "string"), "verified"))["pair_id"]
        self.verified_ids = pc.cast(ids, "string").combine_chunks()
        self.n = len(self.verified_ids)
        self.rows_in = int(self.pf.metadata.num_rows)
        from pathlib import Path

        self.base_dir = None if is_url(verified_path) else str(Path(verified_path).resolve().parent)

    def batches(self) -> Iterator[Batch]:
        start = 0
        for rb in self.pf.iter_batches(batch_size=READ_BATCH_ROWS):
            df = rb.to_pandas()
            df = df[df["status"].astype(str) == "verified"].reset_index(drop=True)
            yield Batch(start, [row_dict(r) for _, r in df.iterrows()], df)
            start += len(df)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None




class ReadVerifiedStep:
    """The first step of a pass over verified.parquet: every row is a verified pair (no work, no audio)."""

    name = "verified"

    def requests(self, job: Any, side: str) -> list:
        return []

    def run(self, job: Any, audio: dict, result: Any) -> bool:
        return True

    def passes(self, outcome: Any) -> bool:
        return True


class VerifiedRowsClient:
    """The client of `ReadVerifiedStep`: reads verified.parquet; pairs that no later step wants get no task."""

    label = "verified"
    audio_root = None
    pairs_per_task = 1
    file_step_name = "decode"

    def __init__(self, verified_path: str):
        from ..runinfo import Timings

        self.path = verified_path
        self.step = ReadVerifiedStep()
        self.timings = Timings()
        self.rows: VerifiedRows | None = None

    def task_step_name(self, decoding: bool) -> str:
        return "tasks"

    def source(self) -> VerifiedRows:
        if self.rows is None:
            self.rows = VerifiedRows(self.path)
        return self.rows

    def early_outcome(self, job: Any) -> Any:
        return None if job.wanted else True  # True: passed on without a task (the later steps count it)

    def deliver(self, job: Any, outcome: Any) -> None:
        pass

    def end_batch(self, batch: Any, stats: dict) -> None:
        pass

    def input_summary(self, results: dict) -> tuple[str, int]:
        """(the verified table the later steps read, its rows)."""
        return self.path, self.source().rows_in

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def cleanup(self) -> None:
        if self.rows is not None:
            self.rows.close()

    def finish(self, scheduler: str, first: Any, results: dict) -> None:
        return None
