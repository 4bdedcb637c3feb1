"""targets as a step of the audio pass: one verified pair -> its STFT magnitude frames.

`TargetsStep` runs in the Dask tasks (`compute.compute_pair_audio` on the pair's audio at
`TargetsConfig.sr`, mono); `TargetsClient` is its session on the client (`TargetsSession`: the shard
writer and the manifest). It runs alone over verified.parquet, or after verify in the same tasks.
"""

from __future__ import annotations

import logging
from typing import Any

from ..audio import DecodeRequest
from ..audiopass.steps import LaterStepClient, PairJob, PairResult
from ..errors import AudioError, PairminerError
from .compute import TargetsOutcome, check_mix_duration, compute_pair_audio, estimate_frames
from .config import TargetsConfig
from .session import TargetsSession

log = logging.getLogger(__name__)


class TargetsStep:
    """The per-pair part of targets (picklable: holds the config)."""

    name = "targets"

    def __init__(self, config: TargetsConfig):
        self.config = config
        self._req = {"mix": DecodeRequest(config.sr, max_duration_s=config.max_duration_s),
                     "version": DecodeRequest(config.sr, max_duration_s=config.max_duration_s
                                              + config.search_window_s + 3600.0)}

    def requests(self, job: PairJob, side: str) -> list[DecodeRequest]:
        return [self._req[side]]

    def row(self, job: PairJob, result: PairResult | None = None) -> dict:
        """The pair's row with the offset that verify found in this pass (else the row's own)."""
        rec = (result.outcomes.get("verify") if result is not None else None) or {}
        return dict(job.data, offset_s=float(rec["offset_s"])) if "offset_s" in rec else dict(job.data)

    def run(self, job: PairJob, audio: dict[str, dict], result: PairResult) -> TargetsOutcome:
        row = self.row(job, result)
        try:
            check_mix_duration(row, self.config)
            sig = {}
            for side in ("mix", "version"):  # mix first: its error is the one reported
                if job.paths.get(side) is None:
                    raise AudioError(job.path_errors.get(side) or f"no {side} audio path")
                got = audio[side][self._req[side]]
                if isinstance(got, AudioError):
                    raise got
                sig[side] = got[0]
            frames, stats = compute_pair_audio(row, self.config, sig["mix"], sig["version"])
            return TargetsOutcome(frames=frames, stats=stats)
        except PairminerError as exc:
            return TargetsOutcome(error=str(exc))
        except (ValueError, RuntimeError, MemoryError, OSError) as exc:
            log.debug("pair %s failed", row.get("pair_id"), exc_info=True)
            return TargetsOutcome(error=f"{type(exc).__name__}: {exc}")

    def passes(self, outcome: Any) -> bool:
        return outcome is not None and outcome.error is None


class TargetsClient(LaterStepClient):
    """targets' session in the audio pass."""

    label = "targets"

    def __init__(self, session: TargetsSession):
        super().__init__(session, TargetsStep(session.config), session.capacity)

    def cost(self, job: PairJob) -> int:
        return estimate_frames(job.data, self.config)

    def add(self, job: PairJob, outcome: TargetsOutcome | None) -> None:
        """The manifest takes the offsets from the outcome's stats, so the row is the input row as it is."""
        self.session.add(job.data, outcome if outcome is not None else TargetsOutcome(error="not computed"))

    def close(self) -> None:
        self.session.close_writer()
