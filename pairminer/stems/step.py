"""stems as a step of the audio pass: one verified pair -> its stems folder and metadata row.

`StemsStep` runs in the Dask tasks: it decodes the mix at its own rate and channels (or `--sr`), the
version at its own and brings it to the mix's (`align.conform`), aligns and subtracts
(`align.subtract_pair`) and writes the pair's folder atomically (`write.write_pair`); the task
returns only the metadata row, so the audio never travels to the client. `StemsClient` is its
session on the client (`StemsSession`: metadata.parquet, the report, the dataset card).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ..audio import DecodeRequest
from ..audiopass.steps import LaterStepClient, PairJob, PairResult
from ..errors import AudioError, PairminerError
from .config import FORMAT_VERSION, StemsConfig
from .session import StemsOutcome, StemsSession
from .write import folder_name, write_pair

log = logging.getLogger(__name__)

# Catalog columns copied into metadata.parquet when the input has them (licence and ISRC columns).
OPTIONAL_COLUMNS = ("mix_isrc", "version_isrc", "isrc", "license", "licence", "mix_license", "version_license")


def _title(row: dict) -> str | None:
    for k in ("mix_title", "title", "base_title"):
        if row.get(k):
            return str(row[k])
    return None


class StemsStep:
    """The per-pair part of stems (picklable: holds the config and the stems root)."""

    name = "stems"

    def __init__(self, config: StemsConfig, root: str):
        self.config = config
        self.root = root
        cap = config.max_duration_s
        self._req = {"mix": DecodeRequest(config.sr, max_duration_s=cap, mono=False),
                     "version": DecodeRequest(None, max_duration_s=cap + config.search_window_s + 3600.0, mono=False)}

    def requests(self, job: PairJob, side: str) -> list[DecodeRequest]:
        return [self._req[side]]

    def run(self, job: PairJob, audio: dict[str, dict], result: PairResult) -> StemsOutcome:
        try:
            return StemsOutcome(meta=self._run(job, audio, result))
        except PairminerError as exc:
            return StemsOutcome(error=str(exc))
        except (ValueError, RuntimeError, MemoryError, OSError) as exc:
            log.debug("stems: pair %s failed", job.pair_id, exc_info=True)
            return StemsOutcome(error=f"{type(exc).__name__}: {exc}")

    def _run(self, job: PairJob, audio: dict[str, dict], result: PairResult) -> dict:
        from ..targets.session import _artist_key, assign_split
        from .align import AlignParams, conform, subtract_pair

        config, row = self.config, job.data
        got = {}
        for side in ("mix", "version"):  # mix first: its error is the one reported
            if job.paths.get(side) is None:
                raise AudioError(job.path_errors.get(side) or f"no {side} audio path")
            g = audio[side][self._req[side]]
            if isinstance(g, AudioError):
                raise g
            got[side] = g
        (mix, minfo), (ver, vinfo) = got["mix"], got["version"]
        if mix.ndim == 1:
            mix = mix[:, None]
        if mix.shape[1] > 2:
            raise AudioError(f"the mix has {mix.shape[1]} channels; stems are mono or stereo (downmix the file "
                             "to stereo to use this pair)")
        sr = minfo.sr_hz
        ver = conform(ver, vinfo.sr_hz, ver.shape[1] if ver.ndim == 2 else 1, sr, mix.shape[1])
        rec = result.outcomes.get("verify") or {}
        offset = rec.get("offset_s", row.get("offset_s"))
        offset = float(offset) if offset is not None and math.isfinite(float(offset)) else 0.0
        kind = "acapella" if str(row.get("version_kind") or "").strip().lower() == "acapella" else "instrumental"
        params = AlignParams(search_window_s=config.search_window_s, max_drift_ppm=config.max_drift_ppm,
                             min_cancellation_db=config.min_cancellation_db)
        st = subtract_pair(mix, ver, sr, kind, coarse_offset_s=offset, params=params)
        del mix, ver
        if st.n_samples < config.min_seconds * sr:
            raise AudioError(f"the version covers only {st.n_samples / sr:.1f} s of the mix (need min_seconds="
                             f"{config.min_seconds:g})")
        if st.method != "waveform" and config.fallback == "skip":
            raise AudioError(f"does not cancel ({st.reason}); --fallback spectral would write mask-based stems")
        split = assign_split(_artist_key(row), tuple(config.splits), config.split_seed)
        rel = f"{split}/{folder_name(job.pair_id)}"
        clipped = write_pair(self.root, rel, {"mixture": st.mixture, "vocals": st.vocals,
                                              "instrumental": st.instrumental,
                                              "clean": "vocals" if kind == "acapella" else "instrumental"},
                             sr, fmt=config.format, subtype=config.subtype)
        meta = {
            "pair_id": job.pair_id, "mix_track_id": str(row.get("mix_track_id")),
            "version_track_id": str(row.get("version_track_id")), "version_kind": row.get("version_kind"),
            "split": split, "path": rel, "sample_rate": int(sr), "channels": int(st.mixture.shape[1]),
            "mix_start_sample": int(st.mix_start_sample), "n_samples": int(st.n_samples),
            "duration_s": st.n_samples / sr, "method": st.method, "reason": st.reason or None,
            "cancellation_db": _f(st.cancellation_db), "drift_ppm": _f(st.drift_ppm), "polarity": int(st.polarity),
            "lag_samples": _f(st.lag_samples), "gain_db": [float(g) for g in st.gain_db],
            "filter_dev_db": _f(st.filter_dev_db), "model": st.model or None,
            "format": config.format, "subtype": config.subtype, "clipped_samples": int(clipped),
            "artist": row.get("artist"), "title": _title(row), "genre": row.get("genre"),
            "mix_audio_path": row.get("mix_audio_path"), "version_audio_path": row.get("version_audio_path"),
            "format_version": FORMAT_VERSION,
        }
        for col in OPTIONAL_COLUMNS:
            meta[col] = None if row.get(col) is None else str(row[col])
        return meta

    def passes(self, outcome: Any) -> bool:
        return outcome is not None and outcome.error is None


def _f(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class StemsClient(LaterStepClient):
    """stems' session in the audio pass (outcomes are metadata rows: no memory grouping)."""

    label = "stems"

    def __init__(self, session: StemsSession):
        super().__init__(session, StemsStep(session.config, str(session.out)), 1 << 30)
        with self.timings.step("read_input"):
            session.load_existing()

    def add(self, job: PairJob, outcome: StemsOutcome | None) -> None:
        self.session.add(job.pair_id, outcome if outcome is not None else StemsOutcome(error="not computed"))
