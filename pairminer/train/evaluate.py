"""BSS Eval v4 scores (museval) of separated tracks against references, with mixture and oracle baselines.

Framing (as SiSEC 2018 / MUSDB18 reporting): each track is scored as a 2-source problem (vocals,
instrumental) on mono signals (the model is mono; stereo files are downmixed by averaging channels)
at the references' sample rate, with `museval.metrics.bss_eval` (BSS Eval v4: time-invariant
512-tap distortion filters) over 1 s windows with 1 s hop. A track's figure for a metric is the
median over its windows (windows where a reference is silent give NaN in museval and are ignored);
the summary is the median over tracks. An exact estimate scores +inf in BSS Eval; it is reported
as 200 dB (JSON has no infinity).

Methods scored:

* ``model``: the files in ESTIMATES_DIR. A track's missing source estimate is the mixture minus the
  other estimate (so each method is scored on both sources).
* ``mixture``: the mixture (sum of the references) as the estimate of every source, a lower baseline.
* ``irm`` (with ``oracle="irm"``): the ideal ratio mask ``|S_j|^2 / sum_k |S_k|^2`` ("IRM2" of SiSEC
  2018) computed from the references with the same processing chain as `pairminer separate`: the
  mix is resampled to the model's rate, STFT (sr_hz, n_fft, hop), masked, iSTFT, resampled back;
  the instrumental is the mixture minus the masked vocals, so above the model's Nyquist frequency it
  keeps the whole mix, exactly as `separate --mono` does with one vocals model. An upper bound for a
  mask-based model with this STFT.
* ``irm_fullband`` (with ``oracle="irm"``): the same ideal ratio mask computed at the references' own
  rate, with the input-rate STFT that full-band `separate` uses (the model's window duration, hop a
  quarter window; `pairminer.train.separate.input_stft`): the ceiling of a mask-based separator over
  the whole band.

Tracks that cannot be scored (missing or unreadable files, NaN/inf samples in a reference or an
estimate, silent reference vocals, shorter than `MIN_SAMPLES`, or a museval failure) are recorded in
``skipped`` with the reason and the run goes on.

museval, soundfile and soxr are imported lazily: this module imports with torch and numpy alone.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import ConfigError, InputError
from ..runinfo import Timings, versions
from .checkpoint import write_json_atomic
from .separator import SOURCES, input_stft, istft, stft

log = logging.getLogger(__name__)

METRICS = ("SDR", "SIR", "SAR", "ISR")
MIN_SAMPLES = 1024  # BSS Eval v4 fits 512-tap distortion filters; shorter tracks are not scored
DB_CAP = 200.0  # BSS Eval gives +inf dB for an exact estimate; JSON has no infinity
FILE_NAMES = {"vocals": ("vocals.wav",), "instrumental": ("instrumental.wav", "accompaniment.wav")}


@dataclass
class EvaluateResult:
    """What `run_evaluate` wrote: the JSON path, the document and the counts."""

    path: str
    doc: dict
    n_tracks: int  # track folders in the references
    n_scored: int
    n_skipped: int
    skipped: list[dict] = field(default_factory=list)


def bss_eval(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray], sr_hz: int, *,
             window_s: float = 1.0, hop_s: float = 1.0) -> dict[str, dict[str, float | None]]:
    """BSS Eval v4 with museval; medians over windows.

    Args:
        references, estimates: {"vocals": (samples,), "instrumental": (samples,)} float mono, equal lengths.
        sr_hz: sample rate of all signals.

    Returns:
        {source: {"SDR": dB, "SIR": dB, "SAR": dB, "ISR": dB}}; None where every window is undefined.
    """
    import museval

    ref = np.stack([references[s] for s in SOURCES])[:, :, None].astype(np.float64)
    est = np.stack([estimates[s] for s in SOURCES])[:, :, None].astype(np.float64)
    win, hop = int(round(window_s * sr_hz)), int(round(hop_s * sr_hz))
    win = min(win, ref.shape[1])
    sdr, isr, sir, sar, _ = museval.metrics.bss_eval(ref, est, window=win, hop=max(1, min(hop, win)))
    out = {}
    for i, src in enumerate(SOURCES):
        vals = {"SDR": sdr[i], "SIR": sir[i], "SAR": sar[i], "ISR": isr[i]}
        out[src] = {k: _nanmedian(v) for k, v in vals.items()}
    return out


def _nanmedian(v: np.ndarray) -> float | None:
    """Median over windows, NaN windows ignored; +-inf (an exact estimate) clipped to +-DB_CAP for JSON."""
    v = np.asarray(v, dtype=np.float64)
    v = np.clip(v[~np.isnan(v)], -DB_CAP, DB_CAP)
    return round(float(np.median(v)), 4) if v.size else None


def _resample(y: np.ndarray, sr_in: int, sr_out: int, n_out: int | None = None) -> np.ndarray:
    if sr_in != sr_out:
        import soxr

        y = soxr.resample(y, sr_in, sr_out, quality="HQ").astype(np.float32)
    if n_out is not None:
        y = fit_length(y, n_out)
    return y


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad (samples,) to exactly n samples."""
    if len(y) >= n:
        return y[:n]
    return np.pad(y, (0, n - len(y)))


def irm_estimates(references: dict[str, np.ndarray], sr_hz: int, *, model_sr_hz: int = 8192, n_fft: int = 1024,
                  hop: int = 768, alpha: float = 2.0) -> dict[str, np.ndarray]:
    """Oracle ideal-ratio-mask estimates through the separate chain (see the module docstring).

    Args:
        references: {"vocals", "instrumental"}: (samples,) float32 at sr_hz.
        model_sr_hz, n_fft, hop: the model's STFT.
        alpha: mask exponent (2: power ratio).

    Returns:
        {"vocals", "instrumental"}: (samples,) float32 at sr_hz.
    """
    n = len(references["vocals"])
    mix = references["vocals"] + references["instrumental"]
    low = {s: torch.from_numpy(_resample(references[s].astype(np.float32), sr_hz, model_sr_hz)) for s in SOURCES}
    low_mix = low["vocals"] + low["instrumental"]
    power = {s: stft(low[s], n_fft, hop).abs() ** alpha for s in SOURCES}
    mask = power["vocals"] / (power["vocals"] + power["instrumental"]).clamp_min(1e-12)
    vocals_low = istft(stft(low_mix, n_fft, hop) * mask, n_fft, hop, len(low_mix)).numpy()
    vocals = _resample(vocals_low, model_sr_hz, sr_hz, n)
    return {"vocals": vocals, "instrumental": (mix - vocals).astype(np.float32)}


def irm_fullband_estimates(references: dict[str, np.ndarray], sr_hz: int, *, model_sr_hz: int = 8192,
                           n_fft: int = 1024, alpha: float = 2.0) -> dict[str, np.ndarray]:
    """Oracle ideal-ratio-mask estimates at the references' rate, with full-band `separate`'s STFT.

    Returns:
        {"vocals", "instrumental"}: (samples,) float32 at sr_hz.
    """
    n_in, hop_in = input_stft(n_fft, model_sr_hz, sr_hz)
    n = len(references["vocals"])
    t = {s: torch.from_numpy(np.ascontiguousarray(references[s], dtype=np.float32)) for s in SOURCES}
    spec = {s: stft(t[s], n_in, hop_in) for s in SOURCES}
    power = {s: spec[s].abs() ** alpha for s in SOURCES}
    mask = power["vocals"] / (power["vocals"] + power["instrumental"]).clamp_min(1e-12)
    mix_spec = spec["vocals"] + spec["instrumental"]
    vocals = istft(mix_spec * mask, n_in, hop_in, n).numpy().astype(np.float32)
    mix = references["vocals"] + references["instrumental"]
    return {"vocals": vocals, "instrumental": (mix - vocals).astype(np.float32)}


# BSS Eval's memory grows with the track (about 6 GB per 1000 s at 44.1 kHz): longer tracks are refused
# from the file header, before reading (score excerpts, or raise --max-track-s on a machine with the memory).
DEFAULT_MAX_TRACK_S = 600.0
# An estimate may differ from its reference by this much (resampling, STFT padding) and be fitted;
# more is a truncated or padded estimate, which would score as if it were complete.
LENGTH_TOLERANCE_S = 0.1


def _read_mono(path: Path, max_track_s: float | None = None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        if max_track_s is not None:
            info = sf.info(str(path))
            if info.samplerate > 0 and not 0 <= info.frames <= max_track_s * info.samplerate:
                raise InputError(f"{path}: {info.frames / info.samplerate:.0f} s long (from its header), over "
                                 f"evaluate's cap of {max_track_s:g} s (BSS Eval's memory grows with the track); "
                                 "score excerpts, or raise --max-track-s")
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except InputError:
        raise
    except Exception as exc:  # libsndfile errors
        raise InputError(f"{path}: unreadable audio ({exc})") from exc
    return y.mean(axis=1), int(sr)


def _find(folder: Path, source: str) -> Path | None:
    return next((folder / n for n in FILE_NAMES[source] if (folder / n).is_file()), None)


def _read_sources(folder: Path, max_track_s: float | None = None) -> tuple[dict[str, np.ndarray], int | None]:
    out, rates = {}, set()
    for src in SOURCES:
        p = _find(folder, src)
        if p is not None:
            out[src], sr = _read_mono(p, max_track_s)
            rates.add(sr)
    if len(rates) > 1:
        raise InputError(f"{folder}: files have different sample rates {sorted(rates)}")
    return out, (rates.pop() if rates else None)


def evaluate_track(refs: dict[str, np.ndarray], sr_hz: int, estimates: dict[str, np.ndarray] | None, *,
                   oracle: str | None = None, model_sr_hz: int = 8192, n_fft: int = 1024, hop: int = 768,
                   window_s: float = 1.0) -> dict[str, dict[str, dict[str, float | None]]]:
    """Scores of one track for each method: {method: {source: {metric: dB}}}.

    Args:
        refs: both sources, (samples,) float32 at sr_hz.
        estimates: the model's estimates (one or both sources), or None to score the baselines only.
    """
    n = len(refs["vocals"])
    mix = refs["vocals"] + refs["instrumental"]
    methods: dict[str, dict[str, np.ndarray]] = {}
    if estimates:
        est = {s: fit_length(v, n) for s, v in estimates.items()}
        for src, other in (("vocals", "instrumental"), ("instrumental", "vocals")):
            if src not in est:
                est[src] = mix - est[other]
        methods["model"] = est
    methods["mixture"] = {s: mix for s in SOURCES}
    if oracle == "irm":
        methods["irm"] = irm_estimates(refs, sr_hz, model_sr_hz=model_sr_hz, n_fft=n_fft, hop=hop)
        methods["irm_fullband"] = irm_fullband_estimates(refs, sr_hz, model_sr_hz=model_sr_hz, n_fft=n_fft)
    out = {}
    for m, e in methods.items():
        try:
            out[m] = bss_eval(refs, e, sr_hz, window_s=window_s, hop_s=window_s)
        except Exception as exc:  # museval raises plain exceptions on degenerate input
            raise InputError(f"BSS Eval failed for {m} ({type(exc).__name__}: {exc})") from None
    return out


def check_track(refs: dict[str, np.ndarray], estimates: dict[str, np.ndarray] | None, sr_hz: int) -> None:
    """Raise InputError with the reason when a track cannot be scored (see the module docstring)."""
    n = len(refs["vocals"])
    if n < MIN_SAMPLES:
        raise InputError(f"too short to score ({n} sample(s); BSS Eval needs at least {MIN_SAMPLES}, "
                         f"{MIN_SAMPLES / sr_hz:.3f} s)")
    for src, y in (estimates or {}).items():
        if abs(len(y) - n) > LENGTH_TOLERANCE_S * sr_hz:
            raise InputError(f"estimate {src} is {len(y) / sr_hz:.2f} s long but the reference is {n / sr_hz:.2f} s: "
                             "a truncated (or padded) estimate would score as if complete; separate the whole track")
    for what, d in (("reference", refs), ("estimate", estimates or {})):
        for src, y in d.items():
            if not np.isfinite(y).all():
                raise InputError(f"{what} {src} holds NaN or infinite samples; re-export it with finite samples")
    for src in SOURCES:
        if not np.any(refs[src]):
            raise InputError(f"reference {src} is silent (all zero): BSS Eval is undefined for a silent source; "
                             "leave this track out of the test set")


def run_evaluate(estimates_dir: str | Path | None, references_dir: str | Path, out_path: str | Path, *,
                 oracle: str | None = None, model_sr_hz: int = 8192, n_fft: int = 1024, hop: int = 768,
                 window_s: float = 1.0, progress: bool = True,
                 max_track_s: float = DEFAULT_MAX_TRACK_S) -> EvaluateResult:
    """Score every track folder of `references_dir` and write the JSON to `out_path`.

    Args:
        estimates_dir: folders <track>/vocals.wav and/or instrumental.wav (accompaniment.wav accepted);
            None scores only the baselines.
        references_dir: the same layout; each track needs both sources.
        out_path: the JSON document (schemas/evaluate-report.schema.json).
        oracle: None or "irm".
        model_sr_hz, n_fft, hop: the STFT of the IRM oracle (use the model's).
        window_s: BSS Eval window and hop (seconds), at least 0.01 and at most 3600.
        max_track_s: refuse (skip, with the reason) tracks longer than this, from the file header.

    Returns:
        EvaluateResult. Tracks that cannot be scored are listed with a reason; counts add up
        (tracks = scored + skipped).
    """
    if oracle not in (None, "irm"):
        raise ConfigError(f"--oracle {oracle!r}: the only oracle is 'irm'")
    import math

    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and 0.01 <= window_s <= 3600):
        raise ConfigError(f"--window-s {window_s}: give a window of 0.01 to 3600 seconds (1 is BSS Eval v4's)")
    if not (isinstance(max_track_s, (int, float)) and math.isfinite(max_track_s) and max_track_s > 0):
        raise ConfigError(f"--max-track-s {max_track_s}: give a positive number of seconds")
    for name, v in (("--n-fft", n_fft), ("--hop", hop), ("--sr-hz", model_sr_hz)):
        if not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{name} {v}: give a positive integer")
    references_dir = Path(references_dir)
    if not references_dir.is_dir():
        raise InputError(f"{references_dir} is not a folder; give a folder with one sub-folder per track")
    if estimates_dir is not None and not Path(estimates_dir).is_dir():
        raise InputError(f"{estimates_dir} is not a folder; give the -o folder of `pairminer separate`")
    timings = Timings()
    tracks = sorted(p for p in references_dir.iterdir() if p.is_dir())
    if not tracks:
        raise InputError(f"{references_dir} holds no track folders; give a folder with one sub-folder per track "
                         "holding vocals.wav and/or instrumental.wav")
    rows, skipped = [], []
    iterator = _maybe_tqdm(tracks, progress)
    for folder in iterator:
        name = folder.name
        try:
            with timings.step("read"):
                refs, sr = _read_sources(folder, max_track_s)
                missing = [s for s in SOURCES if s not in refs]
                if missing:
                    raise InputError(f"reference {missing[0]} missing (need vocals.wav and instrumental.wav "
                                     "or accompaniment.wav)")
                if len(refs["vocals"]) != len(refs["instrumental"]):
                    raise InputError("reference files have different lengths")
                est = None
                if estimates_dir is not None:
                    est_folder = Path(estimates_dir) / name
                    est, est_sr = _read_sources(est_folder, max_track_s) if est_folder.is_dir() else ({}, None)
                    if not est:
                        raise InputError(f"no estimates in {est_folder}")
                    if est_sr != sr:
                        raise InputError(f"estimates at {est_sr} Hz but references at {sr} Hz")
                check_track(refs, est, sr)
            with timings.step("bss_eval"):
                scores = evaluate_track(refs, sr, est, oracle=oracle, model_sr_hz=model_sr_hz, n_fft=n_fft,
                                        hop=hop, window_s=window_s)
        except InputError as exc:
            skipped.append({"track": name, "reason": str(exc)})
            log.warning("skipping %s: %s", name, exc)
            continue
        for method, by_src in scores.items():
            for src, m in by_src.items():
                rows.append({"track": name, "method": method, "source": src, **m})
    medians = _medians(rows)
    doc = {
        "stage": "evaluate",
        "pairminer_version": __version__,
        "versions": versions(),
        "framing": {"metric_library": "museval (BSS Eval v4)", "window_s": window_s, "hop_s": window_s,
                    "channels": "mono (channels averaged)", "per_track": "median over windows",
                    "summary": "median over tracks", "oracle": oracle,
                    "oracle_stft": {"sr_hz": model_sr_hz, "n_fft": n_fft, "hop": hop} if oracle else None,
                    "oracle_fullband_stft": ({"n_fft_per_model_n_fft": "n_fft * sr_hz / model sr_hz",
                                              "hop": "n_fft_in / 4", "sr_hz": "the references' rate"}
                                             if oracle else None)},
        "inputs": {"estimates_dir": str(estimates_dir) if estimates_dir is not None else None,
                   "references_dir": str(references_dir)},
        "counts": {"tracks": len(tracks), "scored": len(tracks) - len(skipped), "skipped": len(skipped)},
        "medians": medians,
        "scores": rows,
        "skipped": skipped,
        "timings": timings.to_dict(),
    }
    write_json_atomic(Path(out_path), doc)
    return EvaluateResult(str(out_path), doc, len(tracks), len(tracks) - len(skipped), len(skipped), skipped)


def _medians(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r["method"], {}).setdefault(r["source"], {k: [] for k in METRICS})
        for k in METRICS:
            if r[k] is not None and math.isfinite(r[k]):
                out[r["method"]][r["source"]][k].append(r[k])
    return {m: {s: {k: (round(float(np.median(v)), 4) if v else None) for k, v in d.items()} | {"n_tracks": len(d["SDR"])}
                for s, d in by.items()} for m, by in out.items()}


def _maybe_tqdm(items, enabled: bool):
    if not enabled:
        return items
    from ..progress import Progress  # a bar in a terminal, bounded log lines elsewhere

    items = list(items)
    return Progress("evaluate", len(items), unit="track").track(items)


def format_table(doc: dict) -> str:
    """The medians as a fixed-width text table (methods x sources, SDR/SIR/SAR in dB)."""
    lines = [f"{'method':<10}{'source':<14}{'SDR':>8}{'SIR':>8}{'SAR':>8}{'tracks':>8}"]
    for method, by in doc["medians"].items():
        for src, m in by.items():
            cells = "".join(f"{m[k]:>8.2f}" if m[k] is not None else f"{'-':>8}" for k in ("SDR", "SIR", "SAR"))
            lines.append(f"{method:<10}{src:<14}{cells}{m['n_tracks']:>8}")
    n = doc["counts"]
    lines.append(f"{n['scored']} of {n['tracks']} track(s) scored, {n['skipped']} skipped; "
                 f"medians over tracks of per-track medians over {doc['framing']['window_s']} s windows")
    return "\n".join(lines)
